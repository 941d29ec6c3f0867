-- Drives `coditect ide` from Neovim 0.7's built-in LSP client, headless.
-- Run by cmd/coditect's TestIDENeovim:
--   nvim --headless -u NONE -i NONE -n FILE -c 'luafile nvim_e2e.lua'
-- with CODITECT_BIN, CODITECT_TEST_STORE, CODITECT_TEST_ROOT and
-- CODITECT_TEST_OUT (where the JSON result goes) in the environment.
local out = os.getenv('CODITECT_TEST_OUT')
local result = { error = '' }

local function finish()
  local f = io.open(out, 'w')
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd('qa!')
end

local function fail(msg)
  result.error = msg
  finish()
end

local ok, err = pcall(function()
  local initialized, exit_code = false, nil
  local id = vim.lsp.start_client({
    name = 'coditect',
    cmd = { os.getenv('CODITECT_BIN'), 'ide', '--store', os.getenv('CODITECT_TEST_STORE'), '--tenant', 'nvim', '--user', 'ada' },
    root_dir = os.getenv('CODITECT_TEST_ROOT'),
    -- Quick edits are merged into one didChange.
    flags = { debounce_text_changes = 200 },
    on_init = function() initialized = true end,
    on_exit = function(code) exit_code = code end,
  })
  if not id then return fail('start_client failed') end
  vim.lsp.buf_attach_client(0, id)
  if not vim.wait(20000, function() return initialized end, 10) then return fail('no initialize answer') end
  local client = vim.lsp.get_client_by_id(id)

  -- Quick edits: typing inside main, a new line, a multi-byte character.
  vim.api.nvim_buf_set_text(0, 2, 13, 2, 13, { '', '\tprintln("héllo 😀")' })
  vim.api.nvim_buf_set_text(0, 3, 10, 3, 10, { 'x := 1; ' })
  vim.api.nvim_buf_set_text(0, 0, 8, 0, 12, { 'demo' })
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { '// ✓ end' })

  -- The merged didChange goes out when the debounce ends: wait for the
  -- server to report the dirty buffer.
  if not vim.wait(20000, function()
    local res = client.request_sync('workspace/executeCommand', { command = 'coditect.status' }, 20000, 0)
    if not res or res.err then return false end
    result.unsaved = res.result.unsaved
    return result.unsaved == 1
  end, 50) then return fail('the server never saw the buffer dirty: ' .. vim.inspect(result)) end

  vim.cmd('write')
  local uri = vim.uri_from_bufnr(0)
  local saved
  if not vim.wait(20000, function()
    local h = client.request_sync('workspace/executeCommand', { command = 'coditect.file.history', arguments = { { uri = uri } } }, 20000, 0)
    if h and h.result and h.result.events[1] and h.result.events[1].kind == 'ide.saved' then
      saved = h.result.events[1]
      return true
    end
    return false
  end, 50) then return fail('no ide.saved event') end
  result.saved_hash = saved.attrs.hash

  vim.lsp.stop_client(id)
  if not vim.wait(20000, function() return exit_code ~= nil end, 10) then return fail('the server did not exit') end
  result.exit_code = exit_code
  finish()
end)
if not ok then fail(tostring(err)) end
