//! QueryConstraints (PROTOCOL.md §2), read into the library's typed form
//! (`norman::objects::QueryConstraints`) and compiled to SQL: filters become a WHERE fragment with
//! bound parameters (values are never pasted into the text), sorts an ORDER BY over whitelisted column
//! expressions, pages LIMIT/OFFSET. Column names are matched case-insensitively against each route's
//! whitelist; an unknown column is a 400 naming it. A node's `table` is accepted and not checked: each
//! route queries one kind of object.
//!
//! Size limits sit below SQLite's own (32,766 bound values, expression depth 1,000, LIKE patterns of
//! 50,000 bytes), so a query too large is a 400 naming our limit, never a database error: at most
//! [`MAX_FILTER_NODES`] nodes and clauses, [`MAX_FILTER_VALUES`] values, [`MAX_DEPTH`] levels; a
//! clause's children are joined as a balanced tree so the SQL expression stays shallow.

use norman::objects::{
    BinaryRelation, FilterChild, FilterClause, FilterNode, FilterScalar, FilterValue, GetModelsRequest,
    QueryConstraints, SortClause, SortDirection, UnaryRelation,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};
use serde::Deserialize;
use serde_json::Value;

use super::db::parse;
use super::http::{ordered_object, ApiError, ApiResult, RawJson};

/// Column name as clients spell it -> SQL expression over the route's table (constant text only).
pub type Columns = &'static [(&'static str, &'static str)];

pub struct Compiled {
    filter: String,
    filter_params: Vec<SqlValue>,
    order: String,
    limit: i64,
    offset: i64,
}

/// Deep filters make deep SQL; nobody needs more than this.
pub const MAX_DEPTH: usize = 32;
/// Filter nodes and clauses in one query.
pub const MAX_FILTER_NODES: usize = 1000;
/// Values in one query's filter (all `IN` lists and scalars together).
pub const MAX_FILTER_VALUES: usize = 10_000;
/// Bytes of one LIKE pattern (SQLite refuses more than 50,000).
pub const MAX_LIKE_PATTERN: usize = 10_000;

/// The QueryConstraints of a request body; no body (`null`) is none.
pub fn constraints(body: &Value) -> ApiResult<Option<QueryConstraints>> {
    Option::<QueryConstraints>::deserialize(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a QueryConstraints: {e}")))
}

/// GetModelsRequest {constraints, finished_models}, or (as newer clients send) a bare
/// QueryConstraints, or nothing.
pub fn models_request(body: &Value) -> ApiResult<(Option<QueryConstraints>, bool)> {
    match body {
        Value::Object(obj) if obj.contains_key("constraints") || obj.contains_key("finished_models") => {
            let request = GetModelsRequest::deserialize(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not a GetModelsRequest: {e}")))?;
            Ok((request.constraints, request.finished_models))
        }
        other => Ok((constraints(other)?, false)),
    }
}

impl Compiled {
    /// Compiles `constraints` (none: everything in scope, in insertion order).
    pub fn new(constraints: Option<&QueryConstraints>, columns: Columns) -> ApiResult<Self> {
        let mut out = Compiled {
            filter: "1".into(),
            filter_params: Vec::new(),
            order: "rowid".into(),
            limit: -1,
            offset: 0,
        };
        let Some(constraints) = constraints else { return Ok(out) };
        if let Some(filter) = &constraints.filter {
            let mut compiler = FilterCompiler { columns, params: Vec::new(), nodes: 0 };
            out.filter = compiler.clause(filter, 0)?;
            out.filter_params = compiler.params;
        }
        if let Some(sort) = &constraints.sort {
            out.order = compile_sort(sort, columns)?;
        }
        if let Some(page) = &constraints.page {
            // SQLite takes signed 64-bit numbers; a larger limit is no limit.
            out.limit = page.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(-1));
            out.offset = page.offset.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(out)
    }

    /// Reads and compiles the QueryConstraints of a request body.
    pub fn from_body(body: &Value, columns: Columns) -> ApiResult<Self> {
        Self::new(constraints(body)?.as_ref(), columns)
    }

    /// `{select} WHERE ({scope}) AND ({filter}) ORDER BY ... LIMIT ? OFFSET ?`; `scope` may use `?`
    /// placeholders, filled from the `scope_params` given to [`Compiled::params`].
    pub fn sql(&self, select: &str, scope: &str) -> String {
        format!("{select} WHERE ({scope}) AND ({}) ORDER BY {} LIMIT ? OFFSET ?", self.filter, self.order)
    }

    /// `{select} WHERE ({scope}) AND ({filter})`, no order or page (for DELETE and UPDATE).
    pub fn sql_unpaged(&self, select: &str, scope: &str) -> String {
        format!("{select} WHERE ({scope}) AND ({})", self.filter)
    }

    pub fn params(&self, scope_params: Vec<SqlValue>) -> Vec<SqlValue> {
        let mut all = scope_params;
        all.extend(self.filter_params.iter().cloned());
        all.push(SqlValue::Integer(self.limit));
        all.push(SqlValue::Integer(self.offset));
        all
    }

    pub fn params_unpaged(&self, scope_params: Vec<SqlValue>) -> Vec<SqlValue> {
        let mut all = scope_params;
        all.extend(self.filter_params.iter().cloned());
        all
    }

    /// Runs [`Compiled::sql`] (filtered, ordered and paged) with `scope_params` and maps every row.
    pub fn query_map<T>(
        &self,
        conn: &Connection,
        select: &str,
        scope: &str,
        scope_params: Vec<SqlValue>,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> ApiResult<Vec<T>> {
        rows(conn, &self.sql(select, scope), self.params(scope_params), f)
    }

    /// The parsed `json` column of the rows of `table` in `scope` matching the constraints, in their
    /// order and page.
    pub fn select_json(
        &self,
        conn: &Connection,
        table: &str,
        scope: &str,
        scope_params: Vec<SqlValue>,
    ) -> ApiResult<Vec<Value>> {
        json_rows(conn, &self.sql(&format!("SELECT json FROM {table}"), scope), self.params(scope_params))
    }

    /// As [`Compiled::select_json`], but every matching row: no order or page (before an UPDATE or
    /// DELETE of what matched).
    pub fn select_json_unpaged(
        &self,
        conn: &Connection,
        table: &str,
        scope: &str,
        scope_params: Vec<SqlValue>,
    ) -> ApiResult<Vec<Value>> {
        let sql = self.sql_unpaged(&format!("SELECT json FROM {table}"), scope);
        json_rows(conn, &sql, self.params_unpaged(scope_params))
    }

    /// `{id: object}` of the rows of `table` in `scope` matching the constraints, keyed by their `id`
    /// column, in their order and page.
    pub fn select_by_id(
        &self,
        conn: &Connection,
        table: &str,
        scope: &str,
        scope_params: Vec<SqlValue>,
    ) -> ApiResult<RawJson> {
        let rows =
            self.query_map(conn, &format!("SELECT id, json FROM {table}"), scope, scope_params, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
        let entries =
            rows.into_iter().map(|(id, text)| Ok((id, parse(&text)?))).collect::<ApiResult<Vec<_>>>()?;
        Ok(ordered_object(entries))
    }
}

/// The first column of every row, parsed as stored JSON.
fn json_rows(conn: &Connection, sql: &str, params: Vec<SqlValue>) -> ApiResult<Vec<Value>> {
    rows(conn, sql, params, |r| r.get::<_, String>(0))?.iter().map(|t| parse(t)).collect()
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> ApiResult<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), f)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn column(name: &str, columns: Columns) -> ApiResult<&'static str> {
    columns.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|(_, sql)| *sql).ok_or_else(|| {
        let known: Vec<&str> = columns.iter().map(|(k, _)| *k).collect();
        ApiError::bad_request(format!("unknown column `{name}` (known here: {})", known.join(", ")))
    })
}

/// A wire enum value as sent, or its upper-case spelling (clients write `and`, `not in`, `desc`).
fn case_insensitive<T: From<String>>(value: &T, as_str: fn(&T) -> &str) -> T {
    T::from(as_str(value).trim().to_ascii_uppercase())
}

struct FilterCompiler {
    columns: Columns,
    params: Vec<SqlValue>,
    nodes: usize,
}

impl FilterCompiler {
    fn count_node(&mut self) -> ApiResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            return Err(ApiError::bad_request(format!(
                "the filter has more than {MAX_FILTER_NODES} nodes and clauses (the limit of this server)"
            )));
        }
        Ok(())
    }

    fn bind(&mut self, value: &FilterScalar, operator: &BinaryRelation) -> ApiResult<()> {
        if self.params.len() >= MAX_FILTER_VALUES {
            return Err(ApiError::bad_request(format!(
                "the filter has more than {MAX_FILTER_VALUES} values (the limit of this server)"
            )));
        }
        self.params.push(match value {
            FilterScalar::String(s) => {
                if *operator == BinaryRelation::Like && s.len() > MAX_LIKE_PATTERN {
                    return Err(ApiError::bad_request(format!(
                        "a LIKE pattern is longer than {MAX_LIKE_PATTERN} bytes (the limit of this server)"
                    )));
                }
                SqlValue::Text(s.clone())
            }
            FilterScalar::Integer(i) => SqlValue::Integer(*i),
            FilterScalar::Number(n) => SqlValue::Real(*n),
        });
        Ok(())
    }

    fn clause(&mut self, clause: &FilterClause, depth: usize) -> ApiResult<String> {
        if depth > MAX_DEPTH {
            return Err(ApiError::bad_request(format!("filter nested deeper than {MAX_DEPTH} levels")));
        }
        self.count_node()?;
        let join = match case_insensitive(&clause.join_condition, UnaryRelation::as_str) {
            UnaryRelation::And => "AND",
            UnaryRelation::Or => "OR",
            UnaryRelation::Other(other) => {
                return Err(ApiError::bad_request(format!("join_condition `{other}` is not AND or OR")))
            }
        };
        if clause.children.is_empty() {
            // An empty clause constrains nothing.
            return Ok("1".into());
        }
        let parts = clause
            .children
            .iter()
            .map(|child| match child {
                FilterChild::Clause(inner) => self.clause(inner, depth + 1),
                FilterChild::Node(node) => self.node(node),
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(balanced(&parts, join))
    }

    fn node(&mut self, node: &FilterNode) -> ApiResult<String> {
        self.count_node()?;
        let expr = column(&node.column, self.columns)?;
        let operator = case_insensitive(&node.operator, BinaryRelation::as_str);
        let sql_operator = match &operator {
            BinaryRelation::Other(other) => {
                return Err(ApiError::bad_request(format!(
                    "unknown operator `{other}` (one of =, !=, >, <, >=, <=, LIKE, IN, NOT IN)"
                )))
            }
            known => known.as_str(),
        };
        if matches!(operator, BinaryRelation::In | BinaryRelation::NotIn) {
            let items = match &node.value {
                FilterValue::List(items) => items.as_slice(),
                FilterValue::Scalar(one) => std::slice::from_ref(one),
            };
            if items.is_empty() {
                return Ok(if operator == BinaryRelation::In { "0" } else { "1" }.into());
            }
            for item in items {
                self.bind(item, &operator)?;
            }
            let mut marks = String::with_capacity(items.len() * 3);
            for i in 0..items.len() {
                marks.push_str(if i == 0 { "?" } else { ", ?" });
            }
            return Ok(format!("{expr} {sql_operator} ({marks})"));
        }
        let value = as_one(&node.value).ok_or_else(|| {
            ApiError::bad_request(format!("operator {sql_operator} takes one value, not a list"))
        })?;
        self.bind(value, &operator)?;
        Ok(format!("{expr} {sql_operator} ?"))
    }
}

/// The single value of a scalar or of a one-element list.
fn as_one(value: &FilterValue) -> Option<&FilterScalar> {
    match value {
        FilterValue::Scalar(one) => Some(one),
        FilterValue::List(items) if items.len() == 1 => items.first(),
        FilterValue::List(_) => None,
    }
}

/// `(a) OP (b) OP ...` as a balanced tree, so that SQLite's expression depth grows with the log of
/// the number of children, not with the number.
fn balanced(parts: &[String], join: &str) -> String {
    match parts {
        [one] => format!("({one})"),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            format!("({} {join} {})", balanced(left, join), balanced(right, join))
        }
    }
}

fn compile_sort(sort: &SortClause, columns: Columns) -> ApiResult<String> {
    let mut terms = Vec::with_capacity(sort.children.len() + 1);
    if sort.children.len() > MAX_FILTER_NODES {
        return Err(ApiError::bad_request(format!("more than {MAX_FILTER_NODES} sort keys")));
    }
    for node in &sort.children {
        let expr = column(&node.column, columns)?;
        let direction = match case_insensitive(&node.direction, SortDirection::as_str) {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
            SortDirection::Other(other) => {
                return Err(ApiError::bad_request(format!("sort direction `{other}` is not ASC or DESC")))
            }
        };
        terms.push(format!("{expr} {direction}"));
    }
    // Ties keep insertion order, so paging is stable.
    terms.push("rowid".into());
    Ok(terms.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLS: Columns = &[("ID", "id"), ("Name", "name"), ("Account_ID", "account_id")];

    fn compile(body: Value) -> ApiResult<Compiled> {
        Compiled::from_body(&body, COLS)
    }

    #[test]
    fn nested_filters_bind_every_value() {
        let c = compile(json!({"filter": {"join_condition": "OR", "children": [
                {"table": "Models", "column": "Name", "operator": "LIKE", "value": "e%"},
                {"children": [{"table": "Models", "value": "x"}, {"table": "Models", "column": "name", "operator": "not in", "value": ["a", 2]}]}
            ]}, "sort": {"children": [{"table": "Models", "column": "Name", "direction": "desc"}]},
            "page": {"limit": 5, "offset": 1}}))
        .unwrap();
        assert_eq!(
            c.sql("SELECT json FROM models", "account_id = ?"),
            "SELECT json FROM models WHERE (account_id = ?) AND (((name LIKE ?) OR (((id = ?) AND (name NOT IN (?, ?)))))) \
             ORDER BY name DESC, rowid LIMIT ? OFFSET ?"
        );
        assert_eq!(c.params(vec![SqlValue::Text("acc".into())]).len(), 7);
        assert_eq!(
            compile(Value::Null).unwrap().sql("S", "1"),
            "S WHERE (1) AND (1) ORDER BY rowid LIMIT ? OFFSET ?"
        );
    }

    #[test]
    fn unknown_columns_operators_and_shapes_are_named() {
        let detail = |body: Value| compile(body).err().unwrap().detail;
        let err = detail(json!({"filter": {"children": [{"table": "t", "column": "Secret", "value": 1}]}}));
        assert!(err.contains("`Secret`"), "{err}");
        let err = detail(json!({"filter": {"children": [{"table": "t", "operator": "~", "value": 1}]}}));
        assert!(err.contains("`~`"), "{err}");
        let err = detail(json!({"filter": {"children": [{"table": "t", "operator": "=", "value": [1, 2]}]}}));
        assert!(err.contains("one value"), "{err}");
        assert!(compile(json!({"page": {"limit": -1, "offset": 0}})).is_err());
        assert!(compile(json!([1])).is_err());
    }

    #[test]
    fn queries_past_the_limits_are_refused_before_sql() {
        let many: Vec<Value> = (0..MAX_FILTER_VALUES as i64 + 1).map(Value::from).collect();
        let err = compile(json!({"filter": {"children": [{"table": "t", "operator": "IN", "value": many}]}}));
        assert!(err.err().unwrap().detail.contains(&MAX_FILTER_VALUES.to_string()));
        let nodes: Vec<Value> = (0..MAX_FILTER_NODES).map(|i| json!({"table": "t", "value": i})).collect();
        let err = compile(json!({"filter": {"join_condition": "OR", "children": nodes}}));
        assert!(err.err().unwrap().detail.contains(&MAX_FILTER_NODES.to_string()));
        // Just under the limit: a balanced tree, shallow enough for SQLite.
        let nodes: Vec<Value> =
            (0..MAX_FILTER_NODES - 1).map(|i| json!({"table": "t", "value": i})).collect();
        let c = compile(json!({"filter": {"join_condition": "OR", "children": nodes}})).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER, name TEXT, account_id TEXT)").unwrap();
        let rows =
            rows(&conn, &c.sql("SELECT id FROM t", "1"), c.params(vec![]), |r| r.get::<_, i64>(0)).unwrap();
        assert!(rows.is_empty());
        let long = "x".repeat(MAX_LIKE_PATTERN + 1);
        let err = compile(
            json!({"filter": {"children": [{"table": "t", "column": "Name", "operator": "LIKE", "value": long}]}}),
        );
        assert!(err.err().unwrap().detail.contains("LIKE"));
    }
}
