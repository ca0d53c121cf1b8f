module portico.dev/bench/flows-peer

go 1.22
