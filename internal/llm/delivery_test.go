package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// The static part of a request (system text, schema) comes first and is the same bytes for every
// record: two records' bodies agree up to the record's own text, so the provider caches it.
func TestStaticPrefixIsIdenticalAcrossRecords(t *testing.T) {
	o := NewOpenAI(OpenAIConfig{SchemaName: "s", Schema: testSchema(), PromptCacheKey: "k"})
	reqs := realRequests(t, 2, "gpt-5-mini")
	a, err := o.SentBody(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := o.SentBody(reqs[1])
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	sys, _ := json.Marshal(reqs[0].System)
	if end := bytes.Index(a, sys) + len(sys); i < end {
		t.Errorf("the bodies differ at byte %d, inside the static system message (ends at %d): %q", i, end, a[:min(len(a), i+20)])
	}
	if user := bytes.Index(a, []byte("Record ID")); i < user || i > bytes.Index(a, []byte(`"model"`)) {
		t.Errorf("the bodies first differ at byte %d (%q), not inside the record's own text (from byte %d)", i, a[i:min(len(a), i+40)], user)
	}
	// Everything after the user message (model, schema, cache key) is the same too.
	tailA, tailB := a[bytes.LastIndex(a, []byte(`"model"`)):], b[bytes.LastIndex(b, []byte(`"model"`)):]
	if !bytes.Equal(tailA, tailB) {
		t.Errorf("the parts after the messages differ:\n%s\n%s", tailA, tailB)
	}
}

// The delivery fields are sent live, and left out of Body (the response cache's key and a Batch
// API line), so that changing them does not change either.
func TestDeliveryFieldsAreSentButNotKeyed(t *testing.T) {
	req := realRequests(t, 1, "gpt-5-mini")[0]
	req.ServiceTier = TierFlex
	with := NewOpenAI(OpenAIConfig{SchemaName: "s", Schema: testSchema(), PromptCacheKey: "run-key", CacheRetention: "24h"})
	without := NewOpenAI(OpenAIConfig{SchemaName: "s", Schema: testSchema()})
	sent, _ := with.SentBody(req)
	for _, want := range []string{`"prompt_cache_key":"run-key"`, `"prompt_cache_retention":"24h"`, `"service_tier":"flex"`} {
		if !strings.Contains(string(sent), want) {
			t.Errorf("the live body lacks %s", want)
		}
	}
	keyed, _ := with.Body(req)
	plain := req
	plain.ServiceTier = ""
	other, _ := without.Body(plain)
	if !bytes.Equal(keyed, other) {
		t.Errorf("Body changes with the delivery settings:\n%s\n%s", keyed, other)
	}
}

// A request the flex tier refuses FlexFallback times is sent on the default tier: the refusals
// use no attempt, and the answer is billed on the tier that served it.
func TestCallerFallsBackFromFlex(t *testing.T) {
	fake, ts := startFake(t, fakeai.Config{FlexUnavailable: 1})
	_ = fake
	p := newProvider(ts, "", nil)
	var sleeps sleepRecorder
	c := &Caller{Provider: p, Validate: validateTop(testSchema()), MaxAttempts: 2, FlexFallback: 3, Sleep: sleeps.Sleep}
	req := realRequests(t, 1, "gpt-5-mini")[0]
	req.ServiceTier = TierFlex
	res, err := c.Call(context.Background(), req, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.FlexRefusals != 3 || !res.FellBack || res.Attempts != 1 || res.Tier != TierDefault {
		t.Errorf("refusals %d, fell back %v, attempts %d, tier %q", res.FlexRefusals, res.FellBack, res.Attempts, res.Tier)
	}
	if len(res.Billed) != 1 || res.Billed[Charge{Model: "gpt-5-mini", Tier: TierDefault}].InputTokens == 0 {
		t.Errorf("billed %v, want the default tier's answer only", res.Billed)
	}
	if len(sleeps.delays) != 2 {
		t.Errorf("%d backoffs, want 2 (between the refusals; none before the fallback)", len(sleeps.delays))
	}
	// FlexFallback 0 keeps the request on flex until FreeRetryFor runs out: the record is not
	// failed, it stays to do.
	c.FlexFallback, c.FreeRetryFor = 0, 1
	_, err = c.Call(context.Background(), req, 0)
	var le *Error
	if !errors.As(err, &le) || le.Class != ClassFlexUnavailable || !le.Free() {
		t.Errorf("without a fallback: %v", err)
	}
}

// A tier the server names is kept only when it is one the price table knows: anything else it
// echoes (huge, unknown) leaves the tier asked.
func TestServedTierIsOneOfTheKnown(t *testing.T) {
	for in, want := range map[string]string{"flex": "flex", "default": "default", "priority": "priority", "": "",
		"free-for-you": "", strings.Repeat("x", 5000): ""} {
		if got := servedTier(in); got != want {
			t.Errorf("servedTier(%.20q) = %q, want %q", in, got, want)
		}
	}
}
