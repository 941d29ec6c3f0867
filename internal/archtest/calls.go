package archtest

import "go/ast"

// selectorCalls lists the X.Sel of every call of the form X.Sel(...) where
// X is an identifier (a package name, or a variable: callers filter).
func selectorCalls(f *ast.File) [][2]string {
	var out [][2]string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				out = append(out, [2]string{id.Name, sel.Sel.Name})
			}
		}
		return true
	})
	return out
}
