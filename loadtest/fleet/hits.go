package fleet

import (
	"sync"
	"time"
)

// HitBucket is the resolution of a backend's arrival timeline: requests
// are counted per HitBucket of arrival time, so a window's count is exact
// to within one bucket at each end.
const HitBucket = 10 * time.Millisecond

// maxHitBuckets bounds a timeline to one hour (2.9 MB per backend at
// most); arrivals past it are counted in total but in no window.
const maxHitBuckets = int(time.Hour / HitBucket)

// hitTimeline counts a backend's requests per HitBucket of arrival time
// since the fleet's epoch. Counting per bucket rather than keeping each
// arrival keeps memory independent of the rate: a 30 s run costs 3,000
// counters per backend at 30 or at 30,000 requests per second.
type hitTimeline struct {
	epoch   time.Time
	mu      sync.Mutex
	buckets []int64
	late    int64 // arrivals past maxHitBuckets
}

func (h *hitTimeline) add(at time.Time) {
	i := int(at.Sub(h.epoch) / HitBucket)
	i = max(i, 0)
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= maxHitBuckets {
		h.late++
		return
	}
	if i >= len(h.buckets) {
		h.buckets = append(h.buckets, make([]int64, i+1-len(h.buckets))...)
	}
	h.buckets[i]++
}

// between counts the arrivals in the buckets that start in [from, to).
func (h *hitTimeline) between(from, to time.Time) int64 {
	lo := int((from.Sub(h.epoch) + HitBucket - 1) / HitBucket)
	hi := int((to.Sub(h.epoch) + HitBucket - 1) / HitBucket)
	lo = max(lo, 0)
	h.mu.Lock()
	defer h.mu.Unlock()
	hi = min(hi, len(h.buckets))
	var n int64
	for i := lo; i < hi; i++ {
		n += h.buckets[i]
	}
	return n
}
