package tokens

import "testing"

func TestEncodingFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model, want string
	}{
		{"gpt-4o", O200kBase},
		{"gpt-4o-mini", O200kBase},
		{"gpt-4.1-nano", O200kBase},
		{"gpt-5", O200kBase},
		{"o1-preview", O200kBase},
		{"o3-mini", O200kBase},
		{"openai/gpt-4o", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"claude-3-5-haiku", Cl100kBase},
		{"echo", Cl100kBase},
	}
	for _, tc := range tests {
		if got := EncodingFor(tc.model); got != tc.want {
			t.Errorf("EncodingFor(%q) = %q, want %q", tc.model, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// Reference counts from tiktoken (the OpenAI cookbook).
	tests := []struct {
		model, text string
		want        int
	}{
		{"gpt-4o", "hello world", 2},
		{"gpt-4", "hello world", 2},
		{"gpt-4o", "", 0},
		{"gpt-4", "tiktoken is great!", 6},
	}
	for _, tc := range tests {
		if got := c.Count(tc.model, tc.text); got != tc.want {
			t.Errorf("Count(%q, %q) = %d, want %d", tc.model, tc.text, got, tc.want)
		}
	}
}

func TestCountChat(t *testing.T) {
	t.Parallel()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// The chat-format formula: 3 priming tokens, then per message
	// 3 + role + content (+ 1 + name when a name is given).
	msgs := []Message{
		{Role: "system", Content: "You are a helpful assistant."},
		{Role: "user", Name: "ana", Content: "hello world"},
	}
	want := 3 +
		3 + c.Count("gpt-4o", "system") + c.Count("gpt-4o", "You are a helpful assistant.") +
		3 + c.Count("gpt-4o", "user") + c.Count("gpt-4o", "hello world") + 1 + c.Count("gpt-4o", "ana")
	if got := c.CountChat("gpt-4o", msgs); got != want {
		t.Errorf("CountChat = %d, want %d", got, want)
	}
	if got := c.CountChat("gpt-4o", nil); got != 3 {
		t.Errorf("CountChat(nil) = %d, want 3", got)
	}
}
