package worker

import (
	"runtime"
	"runtime/debug"
)

// softLimit keeps the worker's memory near what it needs: once its batch is set up (the
// tokenizer loaded when the run counts tokens), the Go memory it holds plus headroom for the
// requests in flight becomes the runtime's soft limit, so the garbage collector returns memory
// before the process grows instead of letting the heap double. Measured on one offline
// 250,000-record batch on 2 cores: peak RSS 32.9 MB without it and 28.5 MB with it, in the same
// time (11.8 s); with 8 MiB of headroom instead of 10 it took 18 s. A worker that needs more only
// collects more often (the runtime caps that at about half its CPU). A request to an API in
// flight gets 1 MiB (live): it holds its record, prompt, body and answer and leaves as much
// garbage (100-200 KB for a 22 KB registry record), and with 256 KiB the heap's goal was 4 MB, a
// collection every 13 records and a tenth of the worker's CPU against a server that answers at
// once; with 1 MiB, one every 45 records and 2%, for 2 MB more peak RSS at concurrency 8. An
// offline record keeps 256 KiB. GOMEMLIMIT in the environment wins.
func softLimit(getenv func(string) string, concurrency int, live bool) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	perRequest := uint64(256 << 10)
	if live {
		perRequest = 1 << 20
	}
	headroom := uint64(10<<20) + uint64(max(concurrency, 1))*perRequest
	debug.SetMemoryLimit(int64(m.HeapAlloc + m.StackInuse + headroom))
}
