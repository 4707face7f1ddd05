package tokens

import (
	"strings"
	"testing"
)

func BenchmarkCount(b *testing.B) {
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{256, 1 << 10, 10 << 10, 100 << 10} {
		text := strings.Repeat("Summarise the quarterly report for the search team, in 3 bullet points. ", size/72+1)[:size]
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				c.Count("gpt-4o", text)
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strings.TrimSuffix(strings.Repeat("", 0), "") + itoa(n>>10) + "KB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
