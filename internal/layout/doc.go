// Package layout holds no code: its test checks the import rules that docs/architecture.md
// lists ("Rules the layout keeps") against the module's packages, so that the document stays
// true to the code.
package layout
