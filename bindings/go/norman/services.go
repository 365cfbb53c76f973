package norman

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// --- Authenticate (the routes a program needs to get a token; others through Call) ---

// SignupDefault creates an account with no credentials (`PUT authenticate/signup/default`).
func (c *Client) SignupDefault(ctx context.Context) (LoginResponse, error) {
	var out LoginResponse
	err := c.Call(ctx, "PUT", "authenticate/signup/default", nil, &out)
	return out, err
}

// LoginDefault logs in to an account that has no credentials (`POST authenticate/login/default/{id}`).
func (c *Client) LoginDefault(ctx context.Context, accountID string) (LoginResponse, error) {
	var out LoginResponse
	err := c.Call(ctx, "POST", "authenticate/login/default/"+url.PathEscape(accountID), nil, &out)
	return out, err
}

// LoginWithKey logs in with an API key (`POST authenticate/login/key`).
func (c *Client) LoginWithKey(ctx context.Context, accountID string, apiKey Secret) (LoginResponse, error) {
	var out LoginResponse
	in := map[string]string{"account_id": accountID, "api_key": string(apiKey)}
	err := c.Call(ctx, "POST", "authenticate/login/key", in, &out)
	return out, err
}

// --- Persist ---

// GetModels returns models by id (`POST persist/models/get`).
func (c *Client) GetModels(ctx context.Context, req GetModelsRequest) (map[string]Model, error) {
	var out map[string]Model
	err := c.Call(ctx, "POST", "persist/models/get", req, &out)
	return out, err
}

// GetModelBases returns model bases by id (`POST persist/models/bases/get`).
func (c *Client) GetModelBases(ctx context.Context, req GetModelsRequest) (map[string]ModelBase, error) {
	var out map[string]ModelBase
	err := c.Call(ctx, "POST", "persist/models/bases/get", req, &out)
	return out, err
}

// CreateModels creates models, each under a new or given base (`POST persist/models/`), and returns
// them by id. Either backend generation's answer is accepted: a list in request order (today's) or
// a map of id to model (the older one).
func (c *Client) CreateModels(ctx context.Context, models ...Model) (map[string]Model, error) {
	_, byID, err := c.callModels(ctx, "POST", "persist/models/", models)
	return byID, err
}

// CreateModel creates one model and returns it with its ids (and its assets') assigned.
func (c *Client) CreateModel(ctx context.Context, model Model) (Model, error) {
	list, byID, err := c.callModels(ctx, "POST", "persist/models/", []Model{model})
	if err != nil {
		return Model{}, err
	}
	if len(list) > 0 {
		return list[0], nil
	}
	for _, m := range byID {
		return m, nil
	}
	return Model{}, newError(ErrDecode, "POST persist/models/", "the backend created no model")
}

// CreateModelVersions adds versions to existing bases (`POST persist/models/version`); by id, from
// either answer shape (see CreateModels).
func (c *Client) CreateModelVersions(ctx context.Context, models ...Model) (map[string]Model, error) {
	_, byID, err := c.callModels(ctx, "POST", "persist/models/version", models)
	return byID, err
}

// UpdateModels updates models (`PATCH persist/models/`); by id, from either answer shape (see
// CreateModels).
func (c *Client) UpdateModels(ctx context.Context, models ...Model) (map[string]Model, error) {
	_, byID, err := c.callModels(ctx, "PATCH", "persist/models/", models)
	return byID, err
}

// callModels sends models to a route that answers them either as a list in request order (the
// backend of today) or as a map of id to model (the earlier generation), and returns the list (nil
// for a map answer) and the models by id. A list whose models lack an id, or name one twice, would
// lose models in the map: it is ErrDecode.
func (c *Client) callModels(ctx context.Context, method, route string, models []Model) ([]Model, map[string]Model, error) {
	var raw json.RawMessage
	if err := c.Call(ctx, method, route, models, &raw); err != nil {
		return nil, nil, err
	}
	op := method + " " + route
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var byID map[string]Model
		if err := json.Unmarshal(raw, &byID); err != nil {
			return nil, nil, newError(ErrDecode, op, fmt.Sprintf("unexpected response: %v", err))
		}
		return nil, byID, nil
	}
	var list []Model
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, nil, newError(ErrDecode, op, "the answer is neither a list of models nor a map of id to model")
	}
	byID := make(map[string]Model, len(list))
	for i, m := range list {
		if m.ID == "" || m.ID == "0" {
			return nil, nil, newError(ErrDecode, op, fmt.Sprintf("model %d of the answer has no id", i))
		}
		if _, dup := byID[m.ID]; dup {
			return nil, nil, newError(ErrDecode, op, fmt.Sprintf("the answer lists model %q twice", m.ID))
		}
		byID[m.ID] = m
	}
	return list, byID, nil
}

// UpdateModelVersions sets which version of each base is active (`PATCH persist/models/version`).
func (c *Client) UpdateModelVersions(ctx context.Context, previews ...ModelPreview) ([]ModelPreview, error) {
	var out []ModelPreview
	err := c.Call(ctx, "PATCH", "persist/models/version", previews, &out)
	return out, err
}

// DeleteModels deletes the models matching constraints and returns how many
// (`DELETE persist/models/`).
func (c *Client) DeleteModels(ctx context.Context, constraints QueryConstraints) (int64, error) {
	var out int64
	err := c.Call(ctx, "DELETE", "persist/models/", constraints, &out)
	return out, err
}

// GetInvocations returns invocations by id (`POST persist/invocations/get`); nil constraints: all.
func (c *Client) GetInvocations(ctx context.Context, constraints *QueryConstraints) (map[string]Invocation, error) {
	var out map[string]Invocation
	err := c.Call(ctx, "POST", "persist/invocations/get", optional(constraints), &out)
	return out, err
}

// GetInvocationHistory is `POST persist/invocation/history/get`.
func (c *Client) GetInvocationHistory(ctx context.Context, constraints *QueryConstraints) (map[string]Invocation, error) {
	var out map[string]Invocation
	err := c.Call(ctx, "POST", "persist/invocation/history/get", optional(constraints), &out)
	return out, err
}

// CreateInvocations creates invocations (`POST persist/invocations`).
func (c *Client) CreateInvocations(ctx context.Context, invocations ...Invocation) ([]Invocation, error) {
	var out []Invocation
	err := c.Call(ctx, "POST", "persist/invocations", invocations, &out)
	return out, err
}

// CreateInvocationsByName creates count new invocations of each named model
// (`POST persist/invocations/by-name`).
func (c *Client) CreateInvocationsByName(ctx context.Context, counts map[string]int) ([]Invocation, error) {
	var out []Invocation
	err := c.Call(ctx, "POST", "persist/invocations/by-name", counts, &out)
	return out, err
}

// GetNotifications is `POST persist/notifications/get`.
func (c *Client) GetNotifications(ctx context.Context, constraints *QueryConstraints) ([]Notification, error) {
	var out []Notification
	err := c.Call(ctx, "POST", "persist/notifications/get", optional(constraints), &out)
	return out, err
}

// --- Status flags ---

// GetStatusFlags returns flags grouped by entity id (`POST persist/flags/get`); nil: all.
func (c *Client) GetStatusFlags(ctx context.Context, constraints *QueryConstraints) (map[string][]StatusFlag, error) {
	var out map[string][]StatusFlag
	err := c.Call(ctx, "POST", "persist/flags/get", optional(constraints), &out)
	return out, err
}

// GetFlagsOf returns the flags of the given entities.
func (c *Client) GetFlagsOf(ctx context.Context, entityIDs ...string) (map[string][]StatusFlag, error) {
	return c.GetStatusFlags(ctx, WhereIn("Status_Flags", "Entity_ID", entityIDs...))
}

// EntityState fetches the flags of one entity and says whether it is done, failed or pending.
func (c *Client) EntityState(ctx context.Context, entityID string) (EntityState, error) {
	const op = "entity state"
	id, free, err := cString(op, "entity id", entityID)
	if err != nil {
		return EntityPending, err
	}
	defer free()
	out, err := c.await(ctx, op, nil, func(client *C.norman_client, h C.uintptr_t, opID *C.uint64_t) C.enum_norman_result {
		return C.go_entity_state_async(client, id, h, opID)
	})
	return out.state, err
}

// StateOfFlags judges a list of flags without a network call.
func StateOfFlags(flags []StatusFlag) (EntityState, error) {
	encoded, err := json.Marshal(flags)
	if err != nil {
		return EntityPending, newError(ErrInvalidJSON, "state of flags", err.Error())
	}
	s, free, err := cString("state of flags", "flags", string(encoded))
	if err != nil {
		return EntityPending, err
	}
	defer free()
	var state C.enum_norman_entity_state
	err = call("state of flags", func() C.enum_norman_result { return C.norman_entity_state_of_flags(s, &state) })
	return EntityState(state), err
}

// --- File push and pull ---

// PairAssetSocket allocates an upload socket for a model asset (`POST file-push/socket/pair/asset`).
func (c *Client) PairAssetSocket(ctx context.Context, req SocketAssetPairingRequest) (Pairing, error) {
	var out Pairing
	err := c.Call(ctx, "POST", "file-push/socket/pair/asset", req, &out)
	return out, err
}

// PairInputSocket allocates an upload socket for an invocation input (`POST file-push/socket/pair/input`).
func (c *Client) PairInputSocket(ctx context.Context, req SocketInputPairingRequest) (Pairing, error) {
	var out Pairing
	err := c.Call(ctx, "POST", "file-push/socket/pair/input", req, &out)
	return out, err
}

// CompleteUpload tells the backend an upload on pairingID ended with checksum
// (`POST file-push/socket/complete`); the backend checks it against what it received.
func (c *Client) CompleteUpload(ctx context.Context, pairingID string, checksum Digest) error {
	in := ChecksumRequest{PairingID: pairingID, Checksum: checksum.String()}
	return c.Call(ctx, "POST", "file-push/socket/complete", in, nil)
}

// DownloadMetadata is the progress of a pull the backend makes (`GET file-pull/metadata/{id}`).
func (c *Client) DownloadMetadata(ctx context.Context, entityID string) (TrackedDownload, error) {
	var out TrackedDownload
	err := c.Call(ctx, "GET", "file-pull/metadata/"+url.PathEscape(entityID), nil, &out)
	return out, err
}

// SubmitAssetLinks has the backend fetch an asset from links (`POST file-pull/upload/assets`).
func (c *Client) SubmitAssetLinks(ctx context.Context, req AssetDownloadRequest) ([]string, error) {
	var out []string
	err := c.Call(ctx, "POST", "file-pull/upload/assets", req, &out)
	return out, err
}

// SubmitInputLinks has the backend fetch an input from links (`POST file-pull/upload/inputs`).
func (c *Client) SubmitInputLinks(ctx context.Context, req InputDownloadRequest) ([]string, error) {
	var out []string
	err := c.Call(ctx, "POST", "file-pull/upload/inputs", req, &out)
	return out, err
}

// SubmitOutputLinks has the backend fetch an output from links (`POST file-pull/upload/outputs`).
func (c *Client) SubmitOutputLinks(ctx context.Context, req OutputDownloadRequest) ([]string, error) {
	var out []string
	err := c.Call(ctx, "POST", "file-pull/upload/outputs", req, &out)
	return out, err
}

// optional sends no body for nil constraints (the routes then mean "all").
func optional(constraints *QueryConstraints) any {
	if constraints == nil {
		return nil
	}
	return constraints
}
