-- Neovim as the human's editor on the IDE bridge: its built-in LSP client
-- (no Coditect bridge capability) attached to `coditect ide`, headless,
-- while an agent asks it through `coditect mcp`. Run by cmd/coditect's
-- TestBridgeNeovim:
--   nvim --headless -u NONE -i NONE -n MAIN_FILE -c 'luafile nvim_bridge.lua'
-- with CODITECT_BIN, CODITECT_TEST_STORE, CODITECT_TEST_TENANT,
-- CODITECT_TEST_ROOT (the workspace; its util.go is opened too) and
-- CODITECT_TEST_SHOWDOC in the environment:
--   "neovim": Neovim's own client capabilities (0.7 declares no
--             window/showDocument);
--   "declared": the capability declared; Neovim's own showDocument
--             handler where it has one (0.8 and later), else a handler
--             doing what 0.8's does for takeFocus=false (load and list
--             the buffer, leave the window alone).
-- It prints one JSON line per event on stdout: {"event":"ready"} once
-- both files are open in the server, then what the server shows
-- (showMessage, showMessageRequest, showDocument with the state of the
-- buffers), then {"event":"exit"}; {"event":"error"} on a failure.
local function emit(t)
  io.stdout:write(vim.fn.json_encode(t) .. '\n')
  io.stdout:flush()
end

local function fail(msg)
  emit({ event = 'error', error = msg })
  vim.cmd('qa!')
end

local ok, err = pcall(function()
  local root = os.getenv('CODITECT_TEST_ROOT')
  local mode = os.getenv('CODITECT_TEST_SHOWDOC')
  local done = false
  local v = vim.version()
  local version = string.format('%d.%d.%d', v.major, v.minor, v.patch)

  -- The human's answers: record what the server shows and click Open.
  vim.lsp.handlers['window/showMessageRequest'] = function(_, params)
    local titles = {}
    for _, a in ipairs(params.actions or {}) do table.insert(titles, a.title) end
    emit({ event = 'showMessageRequest', type = params.type, message = params.message, actions = titles })
    for _, a in ipairs(params.actions or {}) do
      if a.title == 'Open' then return a end
    end
    return vim.NIL
  end
  local show_message = vim.lsp.handlers['window/showMessage']
  vim.lsp.handlers['window/showMessage'] = function(e, params, ctx, config)
    emit({ event = 'showMessage', type = params.type, message = params.message })
    if mode == 'neovim' then done = true end
    return show_message(e, params, ctx, config)
  end

  local caps = vim.lsp.protocol.make_client_capabilities()
  local builtin_show = vim.lsp.handlers['window/showDocument']
  if mode == 'declared' then
    caps.window.showDocument = { support = true }
    local show = builtin_show or function(_, params)
      local bufnr = vim.uri_to_bufnr(params.uri)
      if not vim.api.nvim_buf_is_loaded(bufnr) then vim.fn.bufload(bufnr) end
      vim.api.nvim_buf_set_option(bufnr, 'buflisted', true)
      if params.takeFocus then
        vim.lsp.util.jump_to_location({ uri = params.uri, range = params.selection }, 'utf-16')
      end
      return { success = true }
    end
    vim.lsp.handlers['window/showDocument'] = function(e, params, ctx, config)
      local res = show(e, params, ctx, config)
      local bufnr = vim.uri_to_bufnr(params.uri)
      emit({ event = 'showDocument', uri = params.uri, takeFocus = params.takeFocus,
        line = params.selection and params.selection.start.line or vim.NIL,
        handler = builtin_show and 'neovim' or 'test',
        bufname = vim.api.nvim_buf_get_name(bufnr), loaded = vim.api.nvim_buf_is_loaded(bufnr),
        listed = vim.api.nvim_buf_get_option(bufnr, 'buflisted'),
        current = vim.api.nvim_buf_get_name(0), result = res })
      done = true
      return res
    end
  end

  local initialized, exit_code = false, nil
  local id = vim.lsp.start_client({
    name = 'coditect',
    cmd = { os.getenv('CODITECT_BIN'), 'ide', '--store', os.getenv('CODITECT_TEST_STORE'),
      '--tenant', os.getenv('CODITECT_TEST_TENANT'), '--user', 'ada' },
    root_dir = root,
    capabilities = caps,
    on_init = function() initialized = true end,
    on_exit = function(code) exit_code = code end,
  })
  if not id then return fail('start_client failed') end
  -- The human has main.go (the current buffer) and util.go open.
  vim.lsp.buf_attach_client(0, id)
  local util = vim.fn.bufadd(root .. '/util.go')
  vim.fn.bufload(util)
  vim.lsp.buf_attach_client(util, id)
  if not vim.wait(20000, function() return initialized end, 10) then return fail('no initialize answer') end
  local client = vim.lsp.get_client_by_id(id)
  if not vim.wait(20000, function()
    local res = client.request_sync('workspace/executeCommand', { command = 'coditect.status' }, 20000, 0)
    return res and res.result and res.result.open == 2
  end, 20) then return fail('the server never had both files open') end
  emit({ event = 'ready', version = version, current = vim.api.nvim_buf_get_name(0),
    showDocument = caps.window.showDocument and caps.window.showDocument.support or false })

  -- The agent asks; the test ends with what ide_open shows.
  if not vim.wait(60000, function() return done end, 10) then return fail('nothing was shown within 60s') end

  vim.lsp.stop_client(id)
  if not vim.wait(20000, function() return exit_code ~= nil end, 10) then return fail('the server did not exit') end
  emit({ event = 'exit', code = exit_code })
  vim.cmd('qa!')
end)
if not ok then fail(tostring(err)) end
