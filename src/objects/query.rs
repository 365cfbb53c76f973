//! QueryConstraints: the filter / sort / page body of every `*/get` route (PROTOCOL.md §2).

use serde::{Deserialize, Deserializer, Serialize};

wire_enum! {
    /// FilterNode.operator.
    pub enum BinaryRelation {
        Eq => "=",
        Ne => "!=",
        Gt => ">",
        Lt => "<",
        Ge => ">=",
        Le => "<=",
        Like => "LIKE",
        In => "IN",
        NotIn => "NOT IN",
    }
}

wire_enum! {
    /// FilterClause.join_condition: how a clause combines its children.
    pub enum UnaryRelation {
        And => "AND",
        Or => "OR",
    }
}

wire_enum! {
    /// SortNode.direction.
    pub enum SortDirection {
        Asc => "ASC",
        Desc => "DESC",
    }
}

/// Schema default: "=".
impl Default for BinaryRelation {
    fn default() -> Self {
        BinaryRelation::Eq
    }
}

/// Schema default: "AND".
impl Default for UnaryRelation {
    fn default() -> Self {
        UnaryRelation::And
    }
}

/// Schema default: "ASC".
impl Default for SortDirection {
    fn default() -> Self {
        SortDirection::Asc
    }
}

fn default_column() -> String {
    String::from("ID")
}

/// `{filter, sort, page}`, each `null` when absent. The body of the `*/get` routes (or no body at all).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QueryConstraints {
    /// Which rows to return (`None`: all).
    #[serde(default)]
    pub filter: Option<FilterClause>,
    /// Order of the rows (`None`: the backend's).
    #[serde(default)]
    pub sort: Option<SortClause>,
    /// Which slice of the rows (`None`: all).
    #[serde(default)]
    pub page: Option<PageClause>,
}

/// `{children, join_condition}`: a boolean combination of nodes and nested clauses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FilterClause {
    /// Nodes and nested clauses to combine.
    pub children: Vec<FilterChild>,
    /// How the children combine (AND or OR).
    #[serde(default)]
    pub join_condition: UnaryRelation,
}

/// One child of a FilterClause. On the wire there is no tag: an object with `children` is a clause,
/// anything else is read as a node (which then needs `table` and `value`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FilterChild {
    /// A nested clause.
    Clause(FilterClause),
    /// One comparison.
    Node(FilterNode),
}

impl<'de> Deserialize<'de> for FilterChild {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let child = if value.get("children").is_some() {
            FilterClause::deserialize(value).map(FilterChild::Clause)
        } else {
            FilterNode::deserialize(value).map(FilterChild::Node)
        };
        child.map_err(D::Error::custom)
    }
}

impl From<FilterClause> for FilterChild {
    fn from(clause: FilterClause) -> Self {
        FilterChild::Clause(clause)
    }
}

impl From<FilterNode> for FilterChild {
    fn from(node: FilterNode) -> Self {
        FilterChild::Node(node)
    }
}

/// `{table, column, operator, value}`: one comparison, `table.column operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterNode {
    /// Table of the compared column.
    pub table: String,
    /// Column compared (default "ID").
    #[serde(default = "default_column")]
    pub column: String,
    /// Comparison operator (default equality).
    #[serde(default)]
    pub operator: BinaryRelation,
    /// Value compared against.
    pub value: FilterValue,
}

/// A scalar in a filter: string, integer or number (an integer stays an integer on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterScalar {
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Number(f64),
    /// A string.
    String(String),
}

/// FilterNode.value: a scalar, or a list of scalars (for `IN` / `NOT IN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    /// One scalar.
    Scalar(FilterScalar),
    /// A list of scalars (for `IN` / `NOT IN`).
    List(Vec<FilterScalar>),
}

macro_rules! filter_scalar_from {
    ($($ty:ty => $variant:ident),+ $(,)?) => {$(
        impl From<$ty> for FilterScalar {
            fn from(value: $ty) -> Self {
                FilterScalar::$variant(value.into())
            }
        }
        impl From<$ty> for FilterValue {
            fn from(value: $ty) -> Self {
                FilterValue::Scalar(value.into())
            }
        }
    )+};
}

filter_scalar_from! {
    &str => String,
    String => String,
    &String => String,
    i64 => Integer,
    i32 => Integer,
    u32 => Integer,
    f64 => Number,
}

impl From<FilterScalar> for FilterValue {
    fn from(value: FilterScalar) -> Self {
        FilterValue::Scalar(value)
    }
}

impl<T: Into<FilterScalar>> From<Vec<T>> for FilterValue {
    fn from(values: Vec<T>) -> Self {
        FilterValue::List(values.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<FilterScalar>, const N: usize> From<[T; N]> for FilterValue {
    fn from(values: [T; N]) -> Self {
        FilterValue::List(values.into_iter().map(Into::into).collect())
    }
}

/// `{children: [SortNode]}`: sort keys in order of precedence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SortClause {
    /// Sort keys, first one first.
    pub children: Vec<SortNode>,
}

/// `{table, column, direction}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortNode {
    /// Table of the sort column.
    pub table: String,
    /// Sort column (default "ID").
    #[serde(default = "default_column")]
    pub column: String,
    /// Ascending or descending.
    #[serde(default)]
    pub direction: SortDirection,
}

/// `{limit, offset}`; both keys are required by the schema but may be `null` (no limit / no offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageClause {
    /// Most rows to return (`None`: no limit).
    pub limit: Option<u64>,
    /// Rows to skip first (`None`: none).
    pub offset: Option<u64>,
}

impl FilterNode {
    /// A comparison `table.column operator value`.
    pub fn new(
        table: impl Into<String>,
        column: impl Into<String>,
        operator: BinaryRelation,
        value: impl Into<FilterValue>,
    ) -> Self {
        FilterNode { table: table.into(), column: column.into(), operator, value: value.into() }
    }
}

impl FilterClause {
    /// A clause whose children must all hold.
    pub fn all(children: impl IntoIterator<Item = impl Into<FilterChild>>) -> Self {
        Self::join(UnaryRelation::And, children)
    }

    /// A clause of which one child must hold.
    pub fn any(children: impl IntoIterator<Item = impl Into<FilterChild>>) -> Self {
        Self::join(UnaryRelation::Or, children)
    }

    fn join(
        join_condition: UnaryRelation,
        children: impl IntoIterator<Item = impl Into<FilterChild>>,
    ) -> Self {
        FilterClause { children: children.into_iter().map(Into::into).collect(), join_condition }
    }
}

impl SortNode {
    /// A sort key on `table.column`.
    pub fn new(table: impl Into<String>, column: impl Into<String>, direction: SortDirection) -> Self {
        SortNode { table: table.into(), column: column.into(), direction }
    }
}

impl QueryConstraints {
    /// No filter, sort or page: everything the caller may see.
    pub fn new() -> Self {
        Self::default()
    }

    /// One `table.column = value` node in an AND clause (Python's `QueryConstraints.equals`).
    pub fn equals(
        table: impl Into<String>,
        column: impl Into<String>,
        value: impl Into<FilterValue>,
    ) -> Self {
        Self::with_filter(FilterClause::all([FilterNode::new(table, column, BinaryRelation::Eq, value)]))
    }

    /// `table.ID IN [ids]`, in an OR clause as Python's `QueryConstraints.includes` builds it (for a
    /// single node AND and OR mean the same; OR keeps the bodies byte-identical).
    pub fn ids(table: impl Into<String>, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let ids: Vec<FilterScalar> = ids.into_iter().map(|id| FilterScalar::String(id.into())).collect();
        let node = FilterNode::new(table, default_column(), BinaryRelation::In, FilterValue::List(ids));
        Self::with_filter(FilterClause::any([node]))
    }

    /// Constraints with this filter and no sort or page.
    pub fn with_filter(filter: FilterClause) -> Self {
        QueryConstraints { filter: Some(filter), sort: None, page: None }
    }

    /// Sets the page (`limit` rows from `offset`).
    pub fn with_page(mut self, limit: u64, offset: u64) -> Self {
        self.page = Some(PageClause { limit: Some(limit), offset: Some(offset) });
        self
    }

    /// Adds a sort key after the existing ones.
    pub fn sorted_by(
        mut self,
        table: impl Into<String>,
        column: impl Into<String>,
        direction: SortDirection,
    ) -> Self {
        self.sort
            .get_or_insert_with(SortClause::default)
            .children
            .push(SortNode::new(table, column, direction));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn to_value<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn equals_serializes_to_the_protocol_shape() {
        let query = QueryConstraints::equals("Models", "Name", "resnet");
        assert_eq!(
            serde_json::to_string(&query).unwrap(),
            r#"{"filter":{"children":[{"table":"Models","column":"Name","operator":"=","value":"resnet"}],"join_condition":"AND"},"sort":null,"page":null}"#
        );
        let numeric = QueryConstraints::equals("Invocations", "Count", 3);
        assert_eq!(to_value(&numeric)["filter"]["children"][0]["value"], json!(3));
    }

    #[test]
    fn ids_page_and_sort_serialize_to_the_protocol_shape() {
        let query = QueryConstraints::ids("Models", ["m1", "m2"])
            .with_page(10, 20)
            .sorted_by("Models", "Creation_Time", SortDirection::Desc)
            .sorted_by("Models", "ID", SortDirection::Asc);
        assert_eq!(
            to_value(&query),
            json!({
                "filter": {
                    "children": [{"table": "Models", "column": "ID", "operator": "IN", "value": ["m1", "m2"]}],
                    "join_condition": "OR"
                },
                "sort": {"children": [
                    {"table": "Models", "column": "Creation_Time", "direction": "DESC"},
                    {"table": "Models", "column": "ID", "direction": "ASC"}
                ]},
                "page": {"limit": 10, "offset": 20}
            })
        );
        let back: QueryConstraints = serde_json::from_value(to_value(&query)).unwrap();
        assert_eq!(back, query);
    }

    #[test]
    fn empty_constraints_are_all_null() {
        assert_eq!(
            serde_json::to_string(&QueryConstraints::new()).unwrap(),
            r#"{"filter":null,"sort":null,"page":null}"#
        );
        assert_eq!(serde_json::from_str::<QueryConstraints>("{}").unwrap(), QueryConstraints::new());
        let page: PageClause = serde_json::from_str(r#"{"limit":null,"offset":null}"#).unwrap();
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"limit":null,"offset":null}"#);
    }

    #[test]
    fn nested_clauses_and_defaults_round_trip() {
        let wire = json!({
            "filter": {
                "children": [
                    {"table": "Models", "value": "abc"},
                    {"children": [
                        {"table": "Models", "column": "Version_Label", "operator": "LIKE", "value": "v1%"},
                        {"table": "Models", "column": "Score", "operator": ">=", "value": 0.5}
                    ], "join_condition": "OR"},
                    {"children": []}
                ],
                "unknown_key": 1
            },
            "sort": {"children": [{"table": "Models"}]},
            "page": {"limit": 5, "offset": null},
            "extra": true
        });
        let query: QueryConstraints = serde_json::from_value(wire).unwrap();
        let filter = query.filter.as_ref().unwrap();
        assert_eq!(filter.join_condition, UnaryRelation::And);
        assert_eq!(
            filter.children[0],
            FilterChild::Node(FilterNode::new("Models", "ID", BinaryRelation::Eq, "abc"))
        );
        let FilterChild::Clause(inner) = &filter.children[1] else { panic!("expected a clause") };
        assert_eq!(inner.join_condition, UnaryRelation::Or);
        assert_eq!(
            inner.children[1],
            FilterChild::Node(FilterNode::new("Models", "Score", BinaryRelation::Ge, 0.5))
        );
        assert_eq!(filter.children[2], FilterChild::Clause(FilterClause::all(Vec::<FilterNode>::new())));
        assert_eq!(
            query.sort.as_ref().unwrap().children[0],
            SortNode::new("Models", "ID", SortDirection::Asc)
        );
        assert_eq!(query.page, Some(PageClause { limit: Some(5), offset: None }));

        let again: QueryConstraints = serde_json::from_value(to_value(&query)).unwrap();
        assert_eq!(again, query);
        // Defaults are written out.
        assert_eq!(to_value(&query)["filter"]["children"][0]["column"], json!("ID"));
        assert_eq!(to_value(&query)["filter"]["children"][0]["operator"], json!("="));
    }

    #[test]
    fn every_operator_has_its_wire_string() {
        let expected = ["=", "!=", ">", "<", ">=", "<=", "LIKE", "IN", "NOT IN"];
        let got: Vec<&str> = BinaryRelation::KNOWN.iter().map(BinaryRelation::as_str).collect();
        assert_eq!(got, expected);
        let node: FilterNode =
            serde_json::from_value(json!({"table": "T", "operator": "NOT IN", "value": [1, 2.5, "x"]}))
                .unwrap();
        assert_eq!(node.operator, BinaryRelation::NotIn);
        assert_eq!(
            node.value,
            FilterValue::List(vec![FilterScalar::Integer(1), FilterScalar::Number(2.5), "x".into()])
        );
        // An operator from a newer server survives a round trip.
        let node: FilterNode =
            serde_json::from_value(json!({"table": "T", "operator": "ILIKE", "value": "a"})).unwrap();
        assert_eq!(node.operator, BinaryRelation::Other("ILIKE".into()));
        assert_eq!(to_value(&node)["operator"], json!("ILIKE"));
    }

    #[test]
    fn malformed_filters_are_errors() {
        // A node without a value, a value that is an object, a child that is neither.
        for bad in [
            json!({"children": [{"table": "T"}]}),
            json!({"children": [{"table": "T", "value": {"a": 1}}]}),
            json!({"children": [{"value": 1}]}),
            json!({"children": [7]}),
            json!({"join_condition": "AND"}),
        ] {
            assert!(serde_json::from_value::<FilterClause>(bad.clone()).is_err(), "{bad}");
        }
    }
}
