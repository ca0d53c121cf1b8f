// Command xds-peer is the benchmark peer of Portico's xDS server: go-control-plane v0.14 serving a
// resource set given as proto3 JSON over ADS (SotW and Delta), with either its SnapshotCache or its
// LinearCache, so bench/xds-fanout.ts can measure both against Portico with the same client. It
// applies a change when told on stdin. Written for the benchmark; not part of Portico.
//
// Usage: xds-peer -cache snapshot|linear -resources DIR [-listen 127.0.0.1:0]
//
// DIR holds clusters.json, endpoints.json, listeners.json and routes.json, each a JSON array of
// proto3 JSON resources (snake_case or lowerCamel field names, "@type" in Any). The command prints
// "listening ADDR" once serving, then answers one line per command read on stdin:
//
//	prepare KIND FILE   parse FILE (a JSON array of KIND resources that replace those of the same
//	                    name) and hold it; answers "prepared"
//	apply               publish what was prepared; answers "applied VERSION", the version streams
//	                    will see for KIND (SotW version_info, Delta system_version_info)
//
// It exits when stdin closes.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	// Types that the resources carry inside google.protobuf.Any: protojson resolves "@type" through
	// the global registry, which these imports fill.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// kind is one resource type as the JSON files name it (Portico's GroupResources keys).
type kind struct {
	name    string
	typeURL string
	empty   func() proto.Message
}

var kinds = []kind{
	{"clusters", resourcev3.ClusterType, func() proto.Message { return &clusterv3.Cluster{} }},
	{"endpoints", resourcev3.EndpointType, func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }},
	{"listeners", resourcev3.ListenerType, func() proto.Message { return &listenerv3.Listener{} }},
	{"routes", resourcev3.RouteType, func() proto.Message { return &routev3.RouteConfiguration{} }},
}

func kindNamed(name string) (kind, error) {
	for _, k := range kinds {
		if k.name == name {
			return k, nil
		}
	}
	return kind{}, fmt.Errorf("unknown kind %q", name)
}

// readResources parses a JSON array of proto3 JSON resources of one kind, strictly (an unknown
// field is an error: the peer must serve exactly what Portico serves).
func readResources(k kind, file string) ([]types.Resource, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := make([]types.Resource, 0, len(raw))
	for i, r := range raw {
		m := k.empty()
		if err := protojson.Unmarshal(r, m); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", file, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// publisher holds the served resources in one of go-control-plane's caches.
type publisher interface {
	cache() cachev3.Cache
	// replace swaps in resources of one kind by name and returns the kind's new version.
	replace(k kind, rs []types.Resource) (string, error)
}

func byName(rs []types.Resource) map[string]types.Resource {
	m := make(map[string]types.Resource, len(rs))
	for _, r := range rs {
		m[cachev3.GetResourceName(r)] = r
	}
	return m
}

// ── SnapshotCache ─────────────────────────────────────────────────────────────

// oneGroup maps every node to one snapshot: the simulated fleet is one gateway group, and a
// snapshot per group (not per node) is how a fleet sharing its config uses the SnapshotCache.
type oneGroup struct{}

func (oneGroup) ID(*corev3.Node) string { return "group" }

// snapshotPublisher sets a new Snapshot per change. Each type has its own version, bumped only when
// that type changes, so a change re-sends one type (one shared version would re-send all four).
type snapshotPublisher struct {
	c        cachev3.SnapshotCache
	items    map[string]map[string]types.Resource
	versions map[string]int
}

func newSnapshotPublisher(initial map[string][]types.Resource) (*snapshotPublisher, error) {
	p := &snapshotPublisher{c: cachev3.NewSnapshotCache(true, oneGroup{}, nil), items: map[string]map[string]types.Resource{}, versions: map[string]int{}}
	for _, k := range kinds {
		p.items[k.name] = byName(initial[k.name])
		p.versions[k.name] = 1
	}
	return p, p.publish()
}

func (p *snapshotPublisher) cache() cachev3.Cache { return p.c }

func (p *snapshotPublisher) publish() error {
	snap := &cachev3.Snapshot{}
	for _, k := range kinds {
		list := make([]types.Resource, 0, len(p.items[k.name]))
		for _, r := range p.items[k.name] {
			list = append(list, r)
		}
		snap.Resources[cachev3.GetResponseType(k.typeURL)] = cachev3.NewResources(p.version(k), list)
	}
	if err := snap.Consistent(); err != nil {
		return err
	}
	return p.c.SetSnapshot(context.Background(), "group", snap)
}

func (p *snapshotPublisher) version(k kind) string {
	return fmt.Sprintf("%s-%d", k.name, p.versions[k.name])
}

func (p *snapshotPublisher) replace(k kind, rs []types.Resource) (string, error) {
	for name, r := range byName(rs) {
		p.items[k.name][name] = r
	}
	p.versions[k.name]++
	return p.version(k), p.publish()
}

// ── LinearCache ───────────────────────────────────────────────────────────────

// linearPublisher keeps one LinearCache per type, muxed by type URL. A LinearCache's version is a
// counter bumped on every update; the publisher counts along to tell the caller what streams see.
type linearPublisher struct {
	mux      *cachev3.MuxCache
	caches   map[string]*cachev3.LinearCache
	versions map[string]uint64
}

func newLinearPublisher(initial map[string][]types.Resource) *linearPublisher {
	p := &linearPublisher{caches: map[string]*cachev3.LinearCache{}, versions: map[string]uint64{}}
	byType := map[string]cachev3.Cache{}
	for _, k := range kinds {
		c := cachev3.NewLinearCache(k.typeURL, cachev3.WithInitialResources(byName(initial[k.name])))
		p.caches[k.name] = c
		byType[k.typeURL] = c
	}
	p.mux = &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        byType,
	}
	return p
}

func (p *linearPublisher) cache() cachev3.Cache { return p.mux }

func (p *linearPublisher) replace(k kind, rs []types.Resource) (string, error) {
	c := p.caches[k.name]
	var err error
	if len(rs) == 1 {
		err = c.UpdateResource(cachev3.GetResourceName(rs[0]), rs[0])
	} else {
		err = c.UpdateResources(byName(rs), nil)
	}
	p.versions[k.name]++
	return fmt.Sprint(p.versions[k.name]), err
}

// ── main ──────────────────────────────────────────────────────────────────────

func main() {
	mode := flag.String("cache", "", "snapshot or linear")
	dir := flag.String("resources", "", "folder with clusters.json, endpoints.json, listeners.json, routes.json")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve ADS on")
	flag.Parse()
	if err := run(*mode, *dir, *listen); err != nil {
		fmt.Fprintln(os.Stderr, "xds-peer:", err)
		os.Exit(1)
	}
}

func run(mode, dir, listen string) error {
	initial := map[string][]types.Resource{}
	for _, k := range kinds {
		rs, err := readResources(k, filepath.Join(dir, k.name+".json"))
		if err != nil {
			return err
		}
		initial[k.name] = rs
	}
	var pub publisher
	switch mode {
	case "snapshot":
		p, err := newSnapshotPublisher(initial)
		if err != nil {
			return err
		}
		pub = p
	case "linear":
		pub = newLinearPublisher(initial)
	default:
		return fmt.Errorf("-cache must be snapshot or linear, not %q", mode)
	}
	initial = nil

	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// One connection per simulated Envoy; lift grpc-go's per-connection stream cap all the same.
	// Keepalive pings every 2 hours (grpc-go's default; bench/xds-fanout.ts gives Portico's server the
	// same): the simulated fleet is one busy process that cannot answer a ping within seconds as
	// 1,000 Envoys would, and a dropped stream ends the run.
	srv := grpc.NewServer(
		grpc.MaxConcurrentStreams(1<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
	)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(context.Background(), pub.cache(), nil))
	go func() {
		if err := srv.Serve(lis); err != nil {
			fmt.Fprintln(os.Stderr, "xds-peer: serve:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("listening %s\n", lis.Addr())
	return commands(pub, os.Stdin)
}

// commands runs prepare/apply lines from r until it closes.
func commands(pub publisher, r *os.File) error {
	var prepared *struct {
		k  kind
		rs []types.Resource
	}
	in := bufio.NewScanner(r)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 3 && f[0] == "prepare":
			k, err := kindNamed(f[1])
			if err != nil {
				return err
			}
			rs, err := readResources(k, f[2])
			if err != nil {
				return err
			}
			prepared = &struct {
				k  kind
				rs []types.Resource
			}{k, rs}
			fmt.Println("prepared")
		case len(f) == 1 && f[0] == "apply":
			if prepared == nil {
				return errors.New("apply without prepare")
			}
			version, err := pub.replace(prepared.k, prepared.rs)
			if err != nil {
				return err
			}
			prepared = nil
			fmt.Printf("applied %s\n", version)
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return in.Err()
}
