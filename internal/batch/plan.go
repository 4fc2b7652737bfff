package batch

// Range is one batch: a contiguous run of input records.
type Range struct {
	Number int   `json:"number"`
	First  int64 `json:"first_index"`
	Count  int64 `json:"count"`
}

// Equal splits n records into `batches` equal batches, the last taking the remainder. When there
// are fewer records than batches, each record gets its own batch.
func Equal(n int64, batches int) []Range {
	if n <= 0 || batches <= 0 {
		return nil
	}
	if int64(batches) > n {
		batches = int(n)
	}
	size := n / int64(batches)
	out := make([]Range, 0, batches)
	for i := 0; i < batches; i++ {
		r := Range{Number: i, First: int64(i) * size, Count: size}
		if i == batches-1 {
			r.Count = n - r.First
		}
		out = append(out, r)
	}
	return out
}

// Guided plans guided self-scheduling for n records over `workers` workers: each batch takes
// ceil(remaining / (2 × workers)) records, never fewer than minSize (except the last).
func Guided(n int64, workers int, minSize int64) []Range {
	if n <= 0 || workers <= 0 {
		return nil
	}
	if minSize < 1 {
		minSize = 1
	}
	var out []Range
	var first int64
	for first < n {
		remaining := n - first
		size := (remaining + int64(2*workers) - 1) / int64(2*workers)
		if size < minSize {
			size = minSize
		}
		if size > remaining {
			size = remaining
		}
		out = append(out, Range{Number: len(out), First: first, Count: size})
		first += size
	}
	return out
}
