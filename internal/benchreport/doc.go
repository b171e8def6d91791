// Package benchreport is `pyrunner bench`: the founding table measured. It
// runs five realistic Code nodes (Scenarios) in every setup: the built
// pyrunner binary as its own process in five configurations, through the
// real protocol against the embedded fake broker (runner.go, setups.go);
// n8n's official Python runner the same way when a command line for it is
// given; a warm Pyodide under Node, in-process as n8n 1.x ran Python
// (pyodide.go); and the same code in-process in plain CPython, the floor no
// runner can beat (harness.go). It writes benchmark-results.json and
// benchmark-report.md with an SVG chart of the medians (report.go).
//
// Read Run (measure.go) first, then Setup and Target (how a column is
// started and fed tasks) and Scenario (what a row runs).
package benchreport
