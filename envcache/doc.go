// Package envcache prepares what a Python process needs before it starts:
// a resolved, checked interpreter (Interpreter) and the embedded runtime
// written to a cache directory with its bytecode compiled once
// (InstallRuntime), so no process ever compiles pyrunner's own modules.
//
// Virtual environments per dependency set will live here too.
package envcache
