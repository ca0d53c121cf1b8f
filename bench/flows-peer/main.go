// The peer bench/flows.ts measures Portico's flows against, standing in for KrakenD (not served by
// the Go module proxy here), whose core is the same: Go's net/http, one goroutine per backend call.
//
//	flows-peer -mode aggregator -listen 127.0.0.1:P -users URL -orders URL -products URL
//	    GET /api/home?user=ID: user, orders and recommendations fetched in parallel, the user
//	    reduced to four fields, the three stitched into seed 003's body.
//	flows-peer -mode upstream -listen 127.0.0.1:P -delay 20ms
//	    seed 003's users (/users/{id}), orders (/orders) and recommendations (/recommendations),
//	    each answered after the delay: the three services both gateways aggregate.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

var user = map[string]any{
	"id": "usr_8a3f", "name": "Alice Chen", "avatar_url": "https://cdn.example.com/avatars/usr_8a3f.jpg", "membership": "premium",
	"email_address": "alice@example.com", "internal_id": 88123, "db_shard": "eu-3", "feature_flags": []string{"beta-checkout"}, "created_by_admin": false,
}
var orders = []map[string]any{
	{"order_id": "ord_x7k9", "status": "shipped", "total": 49.98, "created_at": "2026-04-10T14:32:00Z"},
	{"order_id": "ord_w2m1", "status": "delivered", "total": 129.0, "created_at": "2026-04-05T09:15:00Z"},
	{"order_id": "ord_p4n8", "status": "delivered", "total": 34.5, "created_at": "2026-03-28T18:42:00Z"},
}
var recommendations = []map[string]any{
	{"product_id": "prod_k3j7", "name": "Wireless Keyboard Pro", "price": 79.99, "score": 0.94},
	{"product_id": "prod_m9r2", "name": "USB-C Hub 7-in-1", "price": 45.0, "score": 0.87},
}

func upstream(delay time.Duration) http.Handler {
	encode := func(v any) []byte { b, _ := json.Marshal(v); return b }
	userBody, ordersBody, recsBody := encode(user), encode(orders), encode(recommendations)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		switch {
		case r.URL.Path == "/users/"+user["id"].(string):
			body = userBody
		case r.URL.Path == "/orders":
			body = ordersBody
		case r.URL.Path == "/recommendations":
			body = recsBody
		default:
			http.NotFound(w, r)
			return
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

type result struct {
	value any
	err   error
}

func fetch(client *http.Client, u string) result {
	res, err := client.Get(u)
	if err != nil {
		return result{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return result{err: err}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return result{err: err}
	}
	return result{value: v}
}

func aggregator(client *http.Client, users, orders, products string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/home" {
			http.NotFound(w, r)
			return
		}
		id := url.PathEscape(r.URL.Query().Get("user"))
		q := "?user=" + url.QueryEscape(r.URL.Query().Get("user"))
		urls := []string{users + "/users/" + id, orders + "/orders" + q + "&limit=3", products + "/recommendations" + q + "&limit=2"}
		results := make([]result, len(urls))
		var wg sync.WaitGroup
		for i, u := range urls {
			wg.Add(1)
			go func(i int, u string) { defer wg.Done(); results[i] = fetch(client, u) }(i, u)
		}
		wg.Wait()
		if results[0].err != nil {
			http.Error(w, `{"error":"flow_step_failed"}`, http.StatusBadGateway)
			return
		}
		profile := map[string]any{}
		if m, ok := results[0].value.(map[string]any); ok {
			for _, k := range []string{"id", "name", "avatar_url", "membership"} {
				if v, ok := m[k]; ok {
					profile[k] = v
				}
			}
		}
		orElse := func(r result) any {
			if r.err != nil {
				return []any{}
			}
			return r.value
		}
		body, _ := json.Marshal(map[string]any{"user": profile, "recent_orders": orElse(results[1]), "recommendations": orElse(results[2])})
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

func main() {
	mode := flag.String("mode", "aggregator", "aggregator or upstream")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	delay := flag.Duration("delay", 20*time.Millisecond, "upstream: answer after this long")
	users := flag.String("users", "", "aggregator: users service base URL")
	ordersURL := flag.String("orders", "", "aggregator: orders service base URL")
	products := flag.String("products", "", "aggregator: products service base URL")
	flag.Parse()
	var h http.Handler
	if *mode == "upstream" {
		h = upstream(*delay)
	} else {
		transport := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Hour}
		h = aggregator(&http.Client{Transport: transport, Timeout: 5 * time.Second}, strings.TrimRight(*users, "/"), strings.TrimRight(*ordersURL, "/"), strings.TrimRight(*products, "/"))
	}
	log.Fatal(http.ListenAndServe(*listen, h))
}
