package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pyrunner/pyrunner/internal/jsonscan"
)

// Message types, n8n's (docs/protocol.md §4).
const (
	// Broker to runner.
	TypeInfoRequest      = "broker:inforequest"
	TypeRunnerRegistered = "broker:runnerregistered"
	TypeTaskOfferAccept  = "broker:taskofferaccept"
	TypeTaskSettings     = "broker:tasksettings"
	TypeTaskCancel       = "broker:taskcancel"
	TypeRPCResponse      = "broker:rpcresponse"
	TypeDrain            = "broker:drain"
	TypeTaskDataResponse = "broker:taskdataresponse"
	TypeNodeTypes        = "broker:nodetypes"

	// Runner to broker.
	TypeRunnerInfo       = "runner:info"
	TypeTaskOffer        = "runner:taskoffer"
	TypeTaskAccepted     = "runner:taskaccepted"
	TypeTaskRejected     = "runner:taskrejected"
	TypeTaskDeferred     = "runner:taskdeferred"
	TypeTaskDone         = "runner:taskdone"
	TypeTaskError        = "runner:taskerror"
	TypeRPC              = "runner:rpc"
	TypeTaskDataRequest  = "runner:taskdatarequest"
	TypeNodeTypesRequest = "runner:nodetypesrequest"
)

// Rejection reasons, exactly as n8n's runners send them (docs/protocol.md §4.3).
const (
	ReasonOfferExpired = "Offer expired - not accepted within validity window"
	ReasonAtCapacity   = "No open task slots - runner already at capacity"
	ReasonShuttingDown = "Runner is shutting down"
)

// ErrMalformed is returned by Decode when a frame is not a JSON object with a
// string "type", or when a known type lacks a field the protocol requires.
var ErrMalformed = errors.New("malformed message")

// Message is every message of the protocol, in both directions, flattened
// into one struct: each type uses a subset of the fields (docs/protocol.md
// §4.1, §4.2). Unknown fields are ignored when decoding, so a newer broker that adds
// fields does not break us. Fields whose content the runner only passes
// through (settings, results, params) stay raw JSON and are never decoded
// here.
type Message struct {
	Type string `json:"type"`

	TaskID    string `json:"taskId,omitempty"`
	OfferID   string `json:"offerId,omitempty"`
	TaskType  string `json:"taskType,omitempty"`
	ValidFor  *int   `json:"validFor,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	CallID    string `json:"callId,omitempty"`

	// Name is runner:info's runner name and runner:rpc's method name.
	Name   string   `json:"name,omitempty"`
	Types  []string `json:"types,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Status string   `json:"status,omitempty"`

	Settings      json.RawMessage `json:"settings,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	Error         json.RawMessage `json:"error,omitempty"`
	Params        json.RawMessage `json:"params,omitempty"`
	RequestParams json.RawMessage `json:"requestParams,omitempty"`
	NodeTypes     json.RawMessage `json:"nodeTypes,omitempty"`
}

// requiredFields lists, per message type, the fields without which the
// message cannot be acted on. Types not listed need nothing but "type".
var requiredFields = map[string][]string{
	TypeTaskOfferAccept: {"taskId", "offerId"},
	TypeTaskSettings:    {"taskId", "settings"},
	TypeTaskCancel:      {"taskId"},
	TypeRPCResponse:     {"callId", "taskId"},
	TypeRunnerInfo:      {"types"},
	TypeTaskOffer:       {"offerId", "taskType", "validFor"},
	TypeTaskAccepted:    {"taskId"},
	TypeTaskRejected:    {"taskId"},
	TypeTaskDeferred:    {"taskId"},
	TypeTaskDone:        {"taskId"},
	TypeTaskError:       {"taskId"},
	TypeRPC:             {"callId", "taskId", "name"},
}

// Decode parses one frame. It fails with ErrMalformed (wrapped, naming the
// problem) when the frame is not an object with a string type or when a
// required field of a known type is missing. Unknown types decode fine: the
// caller decides to ignore them.
//
// Raw fields (settings, data, error, params, …) are located, not decoded or
// validated: they are what the runner passes on, and can be megabytes.
func Decode(frame []byte) (Message, error) {
	var m Message
	err := jsonscan.EachMember(frame, func(key string, v []byte) error {
		switch key {
		case "type":
			return json.Unmarshal(v, &m.Type)
		case "taskId":
			return json.Unmarshal(v, &m.TaskID)
		case "offerId":
			return json.Unmarshal(v, &m.OfferID)
		case "taskType":
			return json.Unmarshal(v, &m.TaskType)
		case "validFor":
			return json.Unmarshal(v, &m.ValidFor)
		case "requestId":
			return json.Unmarshal(v, &m.RequestID)
		case "callId":
			return json.Unmarshal(v, &m.CallID)
		case "name":
			return json.Unmarshal(v, &m.Name)
		case "types":
			return json.Unmarshal(v, &m.Types)
		case "reason":
			return json.Unmarshal(v, &m.Reason)
		case "status":
			return json.Unmarshal(v, &m.Status)
		case "settings":
			m.Settings = raw(v)
		case "data":
			m.Data = raw(v)
		case "error":
			m.Error = raw(v)
		case "params":
			m.Params = raw(v)
		case "requestParams":
			m.RequestParams = raw(v)
		case "nodeTypes":
			m.NodeTypes = raw(v)
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.Type == "" {
		return m, fmt.Errorf("%w: no \"type\"", ErrMalformed)
	}
	for _, f := range requiredFields[m.Type] {
		if !m.has(f) {
			return m, fmt.Errorf("%w: %s without %q", ErrMalformed, m.Type, f)
		}
	}
	return m, nil
}

// raw keeps a raw field, as encoding/json would: null is absent.
func raw(v []byte) json.RawMessage {
	if string(v) == "null" {
		return nil
	}
	return json.RawMessage(v)
}

func (m *Message) has(field string) bool {
	switch field {
	case "taskId":
		return m.TaskID != ""
	case "offerId":
		return m.OfferID != ""
	case "taskType":
		return m.TaskType != ""
	case "validFor":
		return m.ValidFor != nil
	case "callId":
		return m.CallID != ""
	case "name":
		return m.Name != ""
	case "types":
		return m.Types != nil
	case "settings":
		return len(m.Settings) > 0 && string(m.Settings) != "null"
	}
	return true
}

// Encode marshals a message. Messages built by this package's constructors
// always encode.
func Encode(m Message) []byte {
	b, err := marshal(m)
	if err != nil {
		// Only raw fields can fail, and constructors validate them.
		panic(fmt.Sprintf("broker: encoding %s: %v", m.Type, err))
	}
	return b
}

// RawJSON encodes v for a raw field of a Message, such as an error object.
// Like every frame pyrunner sends, it does not HTML-escape <, > and &:
// n8n's runners send them as they are.
func RawJSON(v any) (json.RawMessage, error) {
	return marshal(v)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// RunnerInfo answers broker:inforequest.
func RunnerInfo(name string, types ...string) Message {
	return Message{Type: TypeRunnerInfo, Name: name, Types: types}
}

// TaskOffer offers one task slot of taskType for validFor milliseconds
// (-1: never expires).
func TaskOffer(offerID, taskType string, validFor int) Message {
	return Message{Type: TypeTaskOffer, OfferID: offerID, TaskType: taskType, ValidFor: &validFor}
}

// TaskAccepted acknowledges a broker:taskofferaccept.
func TaskAccepted(taskID string) Message {
	return Message{Type: TypeTaskAccepted, TaskID: taskID}
}

// TaskRejected refuses a broker:taskofferaccept with one of the Reason
// constants.
func TaskRejected(taskID, reason string) Message {
	return Message{Type: TypeTaskRejected, TaskID: taskID, Reason: reason}
}

// TaskError reports a failed task. err must be valid JSON (normally an object
// {"message", "description"}).
func TaskError(taskID string, err json.RawMessage) Message {
	return Message{Type: TypeTaskError, TaskID: taskID, Error: err}
}

// RPC calls a broker-side method such as logNodeOutput. params must be a
// valid JSON array.
func RPC(callID, taskID, name string, params json.RawMessage) Message {
	return Message{Type: TypeRPC, CallID: callID, TaskID: taskID, Name: name, Params: params}
}

// AppendTaskDone appends a runner:taskdone frame carrying result (raw JSON,
// already validated by the caller) to dst. It is built by hand rather than by
// encoding/json because results can be megabytes that the runner never
// decodes: marshalling a json.RawMessage would scan and copy it again.
func AppendTaskDone(dst []byte, taskID string, result json.RawMessage) []byte {
	dst = append(dst, `{"type":"runner:taskdone","taskId":`...)
	id, _ := json.Marshal(taskID) // a string always marshals
	dst = append(dst, id...)
	dst = append(dst, `,"data":{"result":`...)
	dst = append(dst, result...)
	return append(dst, "}}"...)
}
