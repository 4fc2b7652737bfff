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
// there is a system message.
type templateKey struct {
	model, tier string
	sent, sys   bool
}

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
		if t, err = o.template(k); err != nil {
			return bodyTemplate{}, nil, err
		}
		if bs.templates == nil {
			bs.templates = map[templateKey]bodyTemplate{}
		}
		bs.templates[k] = t
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

// template encodes a request of shape k through the SDK and cuts its messages out.
func (o *OpenAI) template(k templateKey) (bodyTemplate, error) {
	req := Request{Model: k.model, ServiceTier: k.tier, User: placeholderUser}
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
