package benchreport

import (
	"encoding/json"
	"fmt"
	"math"
)

// Scenario is one row of the table: a Code node (all items mode) and the
// items it runs on, the same in every setup.
type Scenario struct {
	Key   string
	Title string
	Code  string
	Items []map[string]any
	// Packages are the third-party packages it imports: the interpreter
	// must have them (Debian: python3-numpy, python3-pandas), or the row is
	// skipped.
	Packages []string
	// Preload is what the "cached environment" setup imports in its
	// zygotes (N8N_PYTHON_PRELOAD).
	Preload string
}

// Scenarios are the founding document's five rows.
func Scenarios() []Scenario {
	return []Scenario{
		{Key: "calc", Title: "Simple calculation", Code: calcCode, Items: orderItems(100), Preload: "json"},
		{Key: "numpy", Title: "NumPy operations", Code: numpyCode, Items: vectorItems(100, 40),
			Packages: []string{"numpy"}, Preload: "numpy"},
		{Key: "pandas", Title: "pandas DataFrame", Code: pandasCode, Items: saleItems(1000),
			Packages: []string{"pandas"}, Preload: "pandas"},
		{Key: "json", Title: "JSON processing", Code: jsonCode, Items: documentItems(100), Preload: "json"},
		{Key: "files", Title: "File operations", Code: filesCode, Items: fileItems(10), Preload: "os"},
	}
}

// calcCode: arithmetic over a few values of each of 100 order items.
const calcCode = `out = []
for item in _items:
    o = item['json']
    subtotal = o['qty'] * o['price']
    discount = subtotal * o['discount_pct'] / 100
    tax = (subtotal - discount) * 0.23
    out.append({'json': {'id': o['id'], 'subtotal': round(subtotal, 2),
                         'tax': round(tax, 2), 'total': round(subtotal - discount + tax, 2),
                         'bulk': o['qty'] >= 10}})
return out`

// numpyCode: a 100×40 matrix from 4,000 input values, its statistics, a
// matrix product and per-column figures, returned as 41 items. It calls
// numpy's functions (np.mean(m)) rather than the array's methods
// (m.mean()), which pyrunner's sandbox refuses today: their lazy import of
// numpy.core._methods is checked as if the user's code had made it.
const numpyCode = `import numpy as np
m = np.array([item['json']['values'] for item in _items], dtype=float)
gram = m.T @ m
z = (m - np.mean(m, axis=0)) / np.std(m, axis=0)
corr = (z.T @ z) / len(m)
out = [{'json': {'column': i, 'mean': round(float(np.mean(m[:, i])), 6),
                 'norm': round(float(np.sqrt(gram[i, i])), 6),
                 'max_corr': round(float(np.sort(np.abs(corr[i]))[-2]), 6)}}
       for i in range(m.shape[1])]
out.append({'json': {'rows': int(m.shape[0]), 'mean': round(float(np.mean(m)), 6),
                     'std': round(float(np.std(m)), 6), 'trace': round(float(np.trace(gram)), 6)}})
return out`

// pandasCode: a frame from 1,000 sale items, grouped, aggregated and
// joined to a small region table, returned as one item per city.
const pandasCode = `import pandas as pd
sales = pd.DataFrame([item['json'] for item in _items])
regions = pd.DataFrame({'city': ['Lisbon', 'Porto', 'Madrid', 'Paris', 'Berlin'],
                        'region': ['south', 'north', 'south', 'west', 'east']})
sales['amount'] = sales['qty'] * sales['price']
per_city = (sales.groupby('city')
            .agg(orders=('id', 'count'), revenue=('amount', 'sum'), average=('amount', 'mean'),
                 customers=('customer', 'nunique'))
            .reset_index()
            .merge(regions, on='city', how='left')
            .sort_values('revenue', ascending=False))
return [{'json': {'city': r.city, 'region': r.region, 'orders': int(r.orders),
                  'customers': int(r.customers), 'revenue': round(float(r.revenue), 2),
                  'average': round(float(r.average), 2)}}
        for r in per_city.itertuples()]`

// jsonCode: each of 100 items carries a nested order document as a JSON
// string; parse it, transform it, serialise it again.
const jsonCode = `import json
out = []
for item in _items:
    doc = json.loads(item['json']['payload'])
    lines = doc['order']['lines']
    doc['order']['total'] = round(sum(l['qty'] * l['price'] for l in lines), 2)
    doc['order']['skus'] = sorted({l['sku'] for l in lines})
    doc['customer']['name'] = doc['customer']['name'].title()
    doc['customer'].pop('notes', None)
    out.append({'json': {'id': doc['id'], 'lines': len(lines),
                         'payload': json.dumps(doc, sort_keys=True, separators=(',', ':'))}})
return out`

// filesCode: write one CSV file per item in the task's working directory,
// read them back, summarise, remove them.
const filesCode = `import os
os.makedirs('bench-files', exist_ok=True)
for i, item in enumerate(_items):
    with open(os.path.join('bench-files', 'part%02d.csv' % i), 'w') as f:
        for row in item['json']['rows']:
            f.write(','.join(str(v) for v in row) + '\n')
files, lines, total, size = 0, 0, 0.0, 0
for name in sorted(os.listdir('bench-files')):
    path = os.path.join('bench-files', name)
    with open(path) as f:
        for line in f:
            lines += 1
            total += sum(float(v) for v in line.split(','))
    files += 1
    size += os.path.getsize(path)
    os.remove(path)
os.rmdir('bench-files')
return [{'json': {'files': files, 'lines': lines, 'bytes': size, 'total': round(total, 3)}}]`

var cities = []string{"Lisbon", "Porto", "Madrid", "Paris", "Berlin"}

func orderItems(n int) []map[string]any {
	return makeItems(n, func(i int) map[string]any {
		return map[string]any{"id": i, "qty": i%17 + 1, "price": 4.5 + float64(i%23), "discount_pct": i % 4 * 5}
	})
}

// vectorItems is n items of k values each, deterministic and not
// collinear.
func vectorItems(n, k int) []map[string]any {
	return makeItems(n, func(i int) map[string]any {
		values := make([]float64, k)
		for j := range values {
			values[j] = math.Round(1000*math.Sin(float64(i*k+j)*0.7)*float64(j%5+1)) / 100
		}
		return map[string]any{"sensor": i, "values": values}
	})
}

func saleItems(n int) []map[string]any {
	return makeItems(n, func(i int) map[string]any {
		return map[string]any{"id": i, "customer": fmt.Sprintf("c%03d", i%211), "city": cities[i%len(cities)],
			"qty": i%9 + 1, "price": 2.25 + float64(i%31)}
	})
}

func documentItems(n int) []map[string]any {
	return makeItems(n, func(i int) map[string]any {
		lines := make([]map[string]any, 8)
		for j := range lines {
			lines[j] = map[string]any{"sku": fmt.Sprintf("SKU-%03d", (i+j*7)%50), "qty": j%3 + 1,
				"price": 1.5 + float64((i+j)%20), "attributes": map[string]any{"color": cities[j%5], "size": j}}
		}
		doc := map[string]any{"id": fmt.Sprintf("order-%05d", i),
			"customer": map[string]any{"name": fmt.Sprintf("customer number %d", i), "email": fmt.Sprintf("c%d@example.com", i),
				"notes": "prefers morning deliveries; call before arriving", "address": map[string]any{"city": cities[i%5], "zip": "1000-001"}},
			"order": map[string]any{"lines": lines, "currency": "EUR", "channel": "web"}}
		payload, _ := json.Marshal(doc)
		return map[string]any{"id": i, "payload": string(payload)}
	})
}

// fileItems is n items, each 50 rows of 6 numbers: one file each.
func fileItems(n int) []map[string]any {
	return makeItems(n, func(i int) map[string]any {
		rows := make([][]float64, 50)
		for r := range rows {
			rows[r] = make([]float64, 6)
			for c := range rows[r] {
				rows[r][c] = float64((i*300+r*6+c)%97) / 4
			}
		}
		return map[string]any{"file": i, "rows": rows}
	})
}

// makeItems wraps n JSON objects as Code-node items with their pairedItem.
func makeItems(n int, json func(i int) map[string]any) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"json": json(i), "pairedItem": map[string]any{"item": i}}
	}
	return items
}
