package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// BenchmarkWorkflows: the trivial task from 1, 10 and 100 distinct
// workflows in turn (task i belongs to workflow i mod k), in isolated,
// reuse and workflow mode, at concurrency 1 and 4. The pool has at most 16
// workers: with 100 workflows, workflow mode keeps recycling workers.
//
//	go test -run '^$' -bench Workflows -benchtime 300x ./e2e/
func BenchmarkWorkflows(b *testing.B) {
	modes := []string{"isolated", "reuse", "workflow"}
	counts := []int{1, 10, 100}
	results := map[string]benchResult{}
	for _, mode := range modes {
		broker, runner, stop := startBenchBroker(b, mode)
		for _, k := range counts {
			settings := make([]json.RawMessage, k)
			for i := range settings {
				settings[i], _ = json.Marshal(map[string]any{
					"code": loadgen.TrivialCode, "nodeMode": "runOnceForAllItems", "items": []any{},
					"workflowId": fmt.Sprintf("wf-%d", i), "nodeId": "node-1", "nodeName": "Code",
				})
			}
			for _, c := range []int{1, 4} {
				key := fmt.Sprintf("%s/%d-workflows/c=%d", mode, k, c)
				b.Run(key, func(b *testing.B) {
					res := measureMix(b, broker, runner, func(i int) json.RawMessage { return settings[i%k] }, c, b.N)
					results[key] = res
					b.ReportMetric(float64(res.p50)/1e6, "p50-ms")
					b.ReportMetric(res.perSecond, "tasks/s")
					b.ReportMetric(res.faultsPerTask, "faults/task")
				})
			}
		}
		stop()
	}
	var sb strings.Builder
	sb.WriteString("\n| workflows | c | isolated p50 ms, tasks/s, faults/task | reuse | workflow |\n|---|---|---|---|---|\n")
	for _, k := range counts {
		for _, c := range []int{1, 4} {
			fmt.Fprintf(&sb, "| %d | %d |", k, c)
			for _, mode := range modes {
				r, ok := results[fmt.Sprintf("%s/%d-workflows/c=%d", mode, k, c)]
				if !ok {
					sb.WriteString(" – |")
					continue
				}
				fmt.Fprintf(&sb, " %.2f, %.0f, %.0f |", float64(r.p50)/1e6, r.perSecond, r.faultsPerTask)
			}
			sb.WriteString("\n")
		}
	}
	fmt.Print(sb.String())
}
