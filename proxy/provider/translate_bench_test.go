package provider

import (
	"testing"

	"github.com/tollgate/tollgate/proxy/anthropicapi"
	"github.com/tollgate/tollgate/proxy/openai"
	"github.com/tollgate/tollgate/proxy/provider/gemini"
)

// benchBody is a typical chat request: a system prompt, three turns and a
// tool.
const benchBody = `{"model": "m", "max_tokens": 256, "temperature": 0.2,
 "tools": [{"type": "function", "function": {"name": "search", "description": "Search the docs", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
 "messages": [
  {"role": "system", "content": "You are a concise assistant for the platform team."},
  {"role": "user", "content": "Summarise last week's incidents and what we changed after each one."},
  {"role": "assistant", "content": "There were two incidents: a Redis failover and a certificate expiry."},
  {"role": "user", "content": "For the Redis one, list the timeline and the follow-up actions, with owners."}]}`

// BenchmarkTranslate measures translating a request to each provider's
// format against parsing it (parse), the baseline the gateway pays anyway.
func BenchmarkTranslate(b *testing.B) {
	req, err := openai.ParseChatRequest([]byte(benchBody))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := openai.ParseChatRequest([]byte(benchBody)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anthropic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := anthropicapi.FromOpenAIRequest(req, 4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gemini", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gemini.FromOpenAIRequest(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
