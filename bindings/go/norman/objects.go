package norman

// The Norman objects of the routes this package wraps, as JSON (docs/schemas/norman_objects.json).
// Ids default to "0" on the wire ("not assigned yet"): an empty Go id is left out so the backend
// assigns one. Datetimes are RFC 3339 UTC strings, passed through unchanged.

// Account is a Norman account.
type Account struct {
	ID           string `json:"id,omitempty"`
	CreationTime string `json:"creation_time,omitempty"`
	Name         string `json:"name"`
}

// LoginResponse is what signup and login routes return.
type LoginResponse struct {
	Account     *Account `json:"account"`
	AccessToken Secret   `json:"access_token"`
	IDToken     Secret   `json:"id_token"`
}

// Model is one version of a model.
type Model struct {
	ID               string            `json:"id,omitempty"`
	AccountID        string            `json:"account_id"`
	ModelBaseID      string            `json:"model_base_id,omitempty"`
	VersionLabel     string            `json:"version_label"`
	Active           bool              `json:"active"`
	BuildStatus      *string           `json:"build_status,omitempty"` // InProgress, Completed, Failed
	CreationTime     string            `json:"creation_time,omitempty"`
	ShortDescription string            `json:"short_description"`
	Assets           []ModelAsset      `json:"assets,omitempty"`
	Tags             []AggregateTag    `json:"tags,omitempty"`
	Name             string            `json:"name"`
	ModelClass       string            `json:"model_class"`
	URL              *string           `json:"url,omitempty"`
	RequestType      string            `json:"request_type"`     // Get, Post, Put
	ModelType        string            `json:"model_type"`       // Api, Pytorch_jit, Transformer_hf
	HostingLocation  string            `json:"hosting_location"` // External, Internal
	OutputFormat     string            `json:"output_format"`    // Binary, Json, Text
	LongDescription  string            `json:"long_description"`
	Inputs           []ModelSignature  `json:"inputs,omitempty"`
	Outputs          []ModelSignature  `json:"outputs,omitempty"`
	HTTPHeaders      map[string]string `json:"http_headers,omitempty"`
	UserAddedTags    []ModelTag        `json:"user_added_tags,omitempty"`
}

// NewModel is a model to create: an active external API model answering JSON to POST requests,
// with one asset slot per name in assets (e.g. "File"). Set other fields before creating it.
func NewModel(accountID, name, versionLabel string, assets ...string) Model {
	m := Model{AccountID: accountID, Name: name, VersionLabel: versionLabel, Active: true,
		RequestType: "Post", ModelType: "Api", HostingLocation: "External", OutputFormat: "Json"}
	for _, asset := range assets {
		m.Assets = append(m.Assets, ModelAsset{AccountID: accountID, AssetName: asset})
	}
	return m
}

// AssetID is the id of the model's asset named name ("" when it has none).
func (m *Model) AssetID(name string) string {
	for _, a := range m.Assets {
		if a.AssetName == name {
			return a.ID
		}
	}
	return ""
}

// ModelAsset is a file slot of a model (weights, logo, ...).
type ModelAsset struct {
	ID        string `json:"id,omitempty"`
	AccountID string `json:"account_id"`
	ModelID   string `json:"model_id,omitempty"`
	AssetName string `json:"asset_name"`
}

// AggregateTag counts how often a tag was given to a model.
type AggregateTag struct {
	ModelID  string `json:"model_id"`
	Name     string `json:"name"`
	TagCount int64  `json:"tag_count"`
}

// ModelTag is a tag a user added to a model.
type ModelTag struct {
	ID        string `json:"id,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	ModelID   string `json:"model_id,omitempty"`
	Name      string `json:"name"`
}

// ModelSignature describes one input or output of a model.
type ModelSignature struct {
	ID            string               `json:"id,omitempty"`
	ModelID       string               `json:"model_id,omitempty"`
	SignatureType string               `json:"signature_type"` // Input, Output
	DataModality  string               `json:"data_modality"`  // Audio, File, Float, Image, Integer, Text, Video
	DataDomain    string               `json:"data_domain"`
	DataEncoding  string               `json:"data_encoding"`
	ReceiveFormat string               `json:"receive_format"` // File, Link, Primitive
	HTTPLocation  string               `json:"http_location"`  // Body, Path, Query
	Hidden        bool                 `json:"hidden"`
	DisplayTitle  string               `json:"display_title"`
	DefaultValue  *string              `json:"default_value,omitempty"`
	Parameters    []ModelParam         `json:"parameters,omitempty"`
	Transforms    []SignatureTransform `json:"transforms,omitempty"`
	SignatureArgs map[string]string    `json:"signature_args,omitempty"`
}

// ModelParam is one parameter of a signature.
type ModelParam struct {
	ID            string `json:"id,omitempty"`
	ModelID       string `json:"model_id,omitempty"`
	SignatureID   string `json:"signature_id,omitempty"`
	DataModality  string `json:"data_modality"`
	DataEncoding  string `json:"data_encoding"`
	ParameterName string `json:"parameter_name"`
}

// SignatureTransform is a transform applied to a signature's data.
type SignatureTransform struct {
	ID            string            `json:"id,omitempty"`
	SignatureID   string            `json:"signature_id,omitempty"`
	TransformName string            `json:"transform_name"`
	TransformArgs map[string]string `json:"transform_args,omitempty"`
}

// ModelPreview is the version summary `PATCH persist/models/version` takes and returns.
type ModelPreview struct {
	ID           string `json:"id,omitempty"`
	AccountID    string `json:"account_id"`
	ModelBaseID  string `json:"model_base_id,omitempty"`
	VersionLabel string `json:"version_label"`
	Active       bool   `json:"active"`
	CreationTime string `json:"creation_time,omitempty"`
}

// ModelBase groups the versions of a model.
type ModelBase struct {
	ID              string         `json:"id,omitempty"`
	AccountID       string         `json:"account_id"`
	Name            string         `json:"name"`
	InvocationCount int64          `json:"invocation_count"`
	ModelPreviews   []ModelPreview `json:"model_previews,omitempty"`
	CreationTime    string         `json:"creation_time,omitempty"`
}

// GetModelsRequest selects models (`persist/models/get`, `persist/models/bases/get`).
type GetModelsRequest struct {
	Constraints    *QueryConstraints `json:"constraints"`
	FinishedModels bool              `json:"finished_models"`
}

// Invocation is one call of a model, with its input and output slots.
type Invocation struct {
	ID           string                `json:"id,omitempty"`
	AccountID    string                `json:"account_id"`
	ModelID      string                `json:"model_id"`
	CreationTime string                `json:"creation_time,omitempty"`
	Inputs       []InvocationSignature `json:"inputs,omitempty"`
	Outputs      []InvocationSignature `json:"outputs,omitempty"`
}

// InvocationSignature is one input or output of an invocation; its ID names the file.
type InvocationSignature struct {
	ID           string `json:"id,omitempty"`
	AccountID    string `json:"account_id"`
	ModelID      string `json:"model_id"`
	SignatureID  string `json:"signature_id"`
	InvocationID string `json:"invocation_id,omitempty"`
	DisplayTitle string `json:"display_title,omitempty"`
}

// Notification is a message the backend keeps for an account.
type Notification map[string]any

// StatusFlagValue is where one processing step of an entity stands.
type StatusFlagValue int

const (
	FlagNotStarted StatusFlagValue = 0
	FlagEnqueued   StatusFlagValue = 1
	FlagInProgress StatusFlagValue = 2
	FlagFinished   StatusFlagValue = 3
	FlagError      StatusFlagValue = 4
)

// StatusFlag is one processing step of an entity (File_S3_Storage, Model_Function_Run, ...).
type StatusFlag struct {
	ID         string          `json:"id,omitempty"`
	AccountID  string          `json:"account_id"`
	EntityID   string          `json:"entity_id"`
	UpdateTime string          `json:"update_time,omitempty"`
	FlagName   string          `json:"flag_name"`
	FlagValue  StatusFlagValue `json:"flag_value"`
}

// EntityState is where an entity stands, judged from all its status flags.
type EntityState int

const (
	// EntityPending: not every flag is Finished yet (or there are none yet).
	EntityPending EntityState = 0
	// EntityDone: every flag is Finished.
	EntityDone EntityState = 1
	// EntityFailed: some flag is Error.
	EntityFailed EntityState = 2
)

func (s EntityState) String() string {
	switch s {
	case EntityDone:
		return "done"
	case EntityFailed:
		return "failed"
	default:
		return "pending"
	}
}

// QueryConstraints filter, sort and page the `.../get` routes.
type QueryConstraints struct {
	Filter *FilterClause `json:"filter"`
	Sort   *SortClause   `json:"sort"`
	Page   *PageClause   `json:"page"`
}

// FilterClause joins nodes and clauses with "AND" or "OR". Children holds FilterNode and
// *FilterClause values.
type FilterClause struct {
	Children      []any  `json:"children"`
	JoinCondition string `json:"join_condition"`
}

// FilterNode compares one column: operator "=", "!=", ">", "<", ">=", "<=", "LIKE", "IN" or "NOT IN".
type FilterNode struct {
	Table    string `json:"table"`
	Column   string `json:"column"`
	Operator string `json:"operator"`
	Value    any    `json:"value"`
}

// SortClause orders results.
type SortClause struct {
	Children []SortNode `json:"children"`
}

// SortNode orders by one column, "ASC" or "DESC".
type SortNode struct {
	Table     string `json:"table"`
	Column    string `json:"column"`
	Direction string `json:"direction"`
}

// PageClause limits results.
type PageClause struct {
	Limit  *int64 `json:"limit"`
	Offset *int64 `json:"offset"`
}

// WhereEquals selects the rows of table whose column equals value.
func WhereEquals(table, column string, value any) *QueryConstraints {
	return &QueryConstraints{Filter: &FilterClause{JoinCondition: "AND",
		Children: []any{FilterNode{Table: table, Column: column, Operator: "=", Value: value}}}}
}

// WhereIn selects the rows of table whose column is one of values.
func WhereIn(table, column string, values ...string) *QueryConstraints {
	return &QueryConstraints{Filter: &FilterClause{JoinCondition: "AND",
		Children: []any{FilterNode{Table: table, Column: column, Operator: "IN", Value: values}}}}
}

// SocketAssetPairingRequest asks for an upload socket for a model asset.
type SocketAssetPairingRequest struct {
	AccountID       string `json:"account_id"`
	ModelID         string `json:"model_id"`
	FileSizeInBytes int64  `json:"file_size_in_bytes"`
	AssetID         string `json:"asset_id"`
}

// SocketInputPairingRequest asks for an upload socket for an invocation input.
type SocketInputPairingRequest struct {
	AccountID       string `json:"account_id"`
	ModelID         string `json:"model_id"`
	FileSizeInBytes int64  `json:"file_size_in_bytes"`
	InvocationID    string `json:"invocation_id"`
	InputID         string `json:"input_id"`
}

// ChecksumRequest completes an upload made on a pairing (`file-push/socket/complete`): the backend
// checks the checksum against what it received.
type ChecksumRequest struct {
	PairingID string `json:"pairing_id"`
	Checksum  string `json:"checksum"`
}

// AssetDownloadRequest has the backend fetch a model asset from links.
type AssetDownloadRequest struct {
	AccountID string   `json:"account_id"`
	ModelID   string   `json:"model_id"`
	Links     []string `json:"links"`
	AssetID   string   `json:"asset_id"`
	AssetName string   `json:"asset_name"`
}

// InputDownloadRequest has the backend fetch an invocation input from links.
type InputDownloadRequest struct {
	AccountID    string   `json:"account_id"`
	ModelID      string   `json:"model_id"`
	Links        []string `json:"links"`
	SignatureID  string   `json:"signature_id"`
	InvocationID string   `json:"invocation_id"`
	InputID      string   `json:"input_id"`
}

// OutputDownloadRequest has the backend fetch an invocation output from links.
type OutputDownloadRequest struct {
	AccountID    string   `json:"account_id"`
	ModelID      string   `json:"model_id"`
	Links        []string `json:"links"`
	SignatureID  string   `json:"signature_id"`
	InvocationID string   `json:"invocation_id"`
	OutputID     string   `json:"output_id"`
}

// TrackedDownload is the progress of a pull (`file-pull/metadata/{entity_id}`); EntityType says
// which of Asset, Invocation with InvocationInput or InvocationOutput is set.
type TrackedDownload struct {
	DownloadRequest struct {
		AccountID string   `json:"account_id"`
		ModelID   string   `json:"model_id"`
		Links     []string `json:"links"`
	} `json:"download_request"`
	FileLink         string               `json:"file_link"`
	Model            Model                `json:"model"`
	EntityType       string               `json:"entity_type"` // Asset, Input, Output
	DownloadedBytes  int64                `json:"downloaded_bytes"`
	TotalBytes       int64                `json:"total_bytes"`
	FileChecksum     string               `json:"file_checksum"`
	Asset            *ModelAsset          `json:"asset,omitempty"`
	Invocation       *Invocation          `json:"invocation,omitempty"`
	InvocationInput  *InvocationSignature `json:"invocation_input,omitempty"`
	InvocationOutput *InvocationSignature `json:"invocation_output,omitempty"`
}
