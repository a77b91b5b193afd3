package balancer

import (
	"context"
	"fmt"
	"testing"
)

func specs(n int, zones ...string) []Spec {
	var out []Spec
	for i := range n {
		z := zones[i%len(zones)]
		out = append(out, Spec{Address: fmt.Sprintf("127.0.%d.%d:80", i%len(zones)+1, i+1), Zone: z, Weight: 1})
	}
	return out
}

func TestSmokeLocalPreference(t *testing.T) {
	p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
	p.Update(specs(6, "a", "b", "c"))
	counts := map[string]int{}
	for range 1000 {
		b, err := p.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[b.Zone()]++
		b.Release()
	}
	if counts["a"] != 1000 {
		t.Fatalf("want all in a, got %v", counts)
	}
	var tr Tried
	b, _ := p.Pick(context.Background(), nil)
	tr.Add(b)
	b.Release()
	b2, _ := p.Pick(context.Background(), &tr)
	if b2.Zone() == "a" {
		t.Fatalf("retry stayed in zone a")
	}
	b2.Release()
}

func BenchmarkSmokePick(b *testing.B) {
	for _, n := range []int{6, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
			p.Update(specs(n, "a", "b", "c"))
			b.ReportAllocs()
			for b.Loop() {
				x, _ := p.Pick(context.Background(), nil)
				x.Release()
			}
		})
	}
}
