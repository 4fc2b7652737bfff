package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// A one-shot request's body is the SDK's encoding of its parameters, but made without the SDK's
// reflective encoder on every request: the encoding of a request of the same model and tier with
// placeholder messages is kept (a template), and each request's two messages are encoded into
// it. The bytes are the SDK's own (a test compares them on every sample record), so the response
// cache's keys do not change with it.

// bodyTemplate is the encoding of one shape of request with its messages cut out.
type bodyTemplate struct {
	head, tail []byte // before and after the messages array's elements
}

// templateKey names a shape: the model, the tier, whether the delivery fields are in, whether
// there is a system message; for a conversation, the tools offered (the caller's slice: an agent
// offers the same one on every turn).
type templateKey struct {
	model, tier string
	sent, sys   bool
	tools       *Tool
	ntools      int
}

// maxTemplates bounds the templates kept: a caller that builds a new tools slice for every
// request gets a template each time, not a growing map.
const maxTemplates = 64

// bodies keeps the templates and the encoding of the last system message (every record of a run
// usually shares it).
type bodies struct {
	mu        sync.Mutex
	templates map[templateKey]bodyTemplate
	system    string
	systemEnc []byte
}

// Placeholders whose encodings are found in a template's bytes.
const (
	placeholderSystem = "\x00trialcat-system\x00"
	placeholderUser   = "\x00trialcat-user\x00"
)

// encode returns the body of a one-shot request (no tools, no conversation); sent includes the
// delivery fields.
func (o *OpenAI) encode(req Request, sent bool) ([]byte, error) {
	k := templateKey{model: req.Model, tier: req.ServiceTier, sent: sent, sys: req.System != ""}
	t, sysEnc, err := o.bodies.get(o, k, req.System)
	if err != nil {
		return nil, err
	}
	userEnc, err := json.Marshal(req.User)
	if err != nil {
		return nil, fmt.Errorf("record %s: encode the request: %w", req.RecordID, err)
	}
	b := make([]byte, 0, len(t.head)+len(sysEnc)+len(userEnc)+len(t.tail)+64)
	b = append(b, t.head...)
	if k.sys {
		b = append(b, `{"content":`...)
		b = append(b, sysEnc...)
		b = append(b, `,"role":"system"},`...)
	}
	b = append(b, `{"content":`...)
	b = append(b, userEnc...)
	b = append(b, `,"role":"user"}`...)
	return append(b, t.tail...), nil
}

// get returns the template of k and the encoding of system.
func (bs *bodies) get(o *OpenAI, k templateKey, system string) (bodyTemplate, []byte, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	t, ok := bs.templates[k]
	if !ok {
		var err error
		if t, err = o.template(k, nil); err != nil {
			return bodyTemplate{}, nil, err
		}
		bs.remember(k, t)
	}
	if !k.sys {
		return t, nil, nil
	}
	if bs.systemEnc == nil || system != bs.system {
		enc, err := json.Marshal(system)
		if err != nil {
			return bodyTemplate{}, nil, fmt.Errorf("encode the system message: %w", err)
		}
		bs.system, bs.systemEnc = system, enc
	}
	return t, bs.systemEnc, nil
}

func (bs *bodies) remember(k templateKey, t bodyTemplate) {
	if bs.templates == nil || len(bs.templates) >= maxTemplates {
		bs.templates = map[templateKey]bodyTemplate{}
	}
	bs.templates[k] = t
}

// encodeConversation returns the body of a request with tools or a conversation: the template of
// its model, tier and tools (the tools' encoding, the largest part, made once) with each message
// encoded by the SDK spliced in.
func (o *OpenAI) encodeConversation(req Request, sent bool) ([]byte, error) {
	k := templateKey{model: req.Model, tier: req.ServiceTier, sent: sent, ntools: len(req.Tools)}
	if len(req.Tools) > 0 {
		k.tools = &req.Tools[0]
	}
	o.bodies.mu.Lock()
	t, ok := o.bodies.templates[k]
	o.bodies.mu.Unlock()
	if !ok {
		var err error
		if t, err = o.template(k, req.Tools); err != nil {
			return nil, err
		}
		o.bodies.mu.Lock()
		o.bodies.remember(k, t)
		o.bodies.mu.Unlock()
	}
	msgs := req.Messages
	if len(msgs) == 0 {
		msgs = []Message{{Role: RoleUser, Content: req.User}}
		if req.System != "" {
			msgs = append([]Message{{Role: RoleSystem, Content: req.System}}, msgs...)
		}
	}
	b := append(make([]byte, 0, len(t.head)+len(t.tail)+4096), t.head...)
	for i, p := range messageParams(msgs) {
		enc, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("record %s: encode the request: %w", req.RecordID, err)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, enc...)
	}
	return append(b, t.tail...), nil
}

// template encodes a request of shape k (with tools, for a conversation) through the SDK and cuts
// its messages out.
func (o *OpenAI) template(k templateKey, tools []Tool) (bodyTemplate, error) {
	req := Request{Model: k.model, ServiceTier: k.tier, User: placeholderUser, Tools: tools}
	if k.sys {
		req.System = placeholderSystem
	}
	full, err := json.Marshal(o.paramsFor(req, k.sent))
	if err != nil {
		return bodyTemplate{}, fmt.Errorf("encode the request: %w", err)
	}
	sys, _ := json.Marshal(placeholderSystem)
	user, _ := json.Marshal(placeholderUser)
	msgs := []byte(`{"content":` + string(user) + `,"role":"user"}`)
	if k.sys {
		msgs = []byte(`{"content":` + string(sys) + `,"role":"system"},` + string(msgs))
	}
	i := bytes.Index(full, msgs)
	if i < 0 || bytes.Count(full, msgs) != 1 {
		return bodyTemplate{}, fmt.Errorf("the SDK's encoding of a request has no messages where expected: %.200s", full)
	}
	return bodyTemplate{head: full[:i], tail: full[i+len(msgs):]}, nil
}
