//! QueryConstraints (PROTOCOL.md §2) compiled to SQL: filters become a WHERE fragment with bound
//! parameters (values are never pasted into the text), sorts an ORDER BY over whitelisted column
//! expressions, pages LIMIT/OFFSET. Column names are matched case-insensitively against each route's
//! whitelist; an unknown column is a 400 naming it. A node's `table` is accepted and not checked: each
//! route queries one kind of object.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};
use serde_json::{Map, Value};

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
const MAX_DEPTH: usize = 32;

impl Compiled {
    /// Parses `constraints` (a QueryConstraints object, or null for none).
    pub fn new(constraints: &Value, columns: Columns) -> ApiResult<Self> {
        let mut out = Compiled {
            filter: "1".into(),
            filter_params: Vec::new(),
            order: "rowid".into(),
            limit: -1,
            offset: 0,
        };
        let obj = match constraints {
            Value::Null => return Ok(out),
            Value::Object(obj) => obj,
            _ => return Err(ApiError::bad_request("constraints must be a QueryConstraints object or null")),
        };
        match obj.get("filter") {
            None | Some(Value::Null) => {}
            Some(filter) => out.filter = compile_filter(filter, columns, &mut out.filter_params, 0)?,
        }
        match obj.get("sort") {
            None | Some(Value::Null) => {}
            Some(sort) => out.order = compile_sort(sort, columns)?,
        }
        match obj.get("page") {
            None | Some(Value::Null) => {}
            Some(Value::Object(page)) => {
                if let Some(limit) = page_number(page, "limit")? {
                    out.limit = limit;
                }
                out.offset = page_number(page, "offset")?.unwrap_or(0);
            }
            Some(_) => return Err(ApiError::bad_request("page must be an object {limit, offset}")),
        }
        Ok(out)
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

fn page_number(page: &Map<String, Value>, field: &str) -> ApiResult<Option<i64>> {
    match page.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!("page.{field} must be a non-negative integer or null"))),
        },
    }
}

fn column(name: Option<&Value>, columns: Columns) -> ApiResult<&'static str> {
    let name = match name {
        None | Some(Value::Null) => "ID",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("a column name must be a string")),
    };
    columns.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|(_, sql)| *sql).ok_or_else(|| {
        let known: Vec<&str> = columns.iter().map(|(k, _)| *k).collect();
        ApiError::bad_request(format!("unknown column `{name}` (known here: {})", known.join(", ")))
    })
}

fn compile_filter(
    node: &Value,
    columns: Columns,
    params: &mut Vec<SqlValue>,
    depth: usize,
) -> ApiResult<String> {
    if depth > MAX_DEPTH {
        return Err(ApiError::bad_request(format!("filter nested deeper than {MAX_DEPTH} levels")));
    }
    let obj = node.as_object().ok_or_else(|| ApiError::bad_request("a filter must be a JSON object"))?;
    if let Some(children) = obj.get("children") {
        let children =
            children.as_array().ok_or_else(|| ApiError::bad_request("filter children must be an array"))?;
        let join = match obj.get("join_condition") {
            None | Some(Value::Null) => "AND",
            Some(Value::String(s)) if s.eq_ignore_ascii_case("AND") => "AND",
            Some(Value::String(s)) if s.eq_ignore_ascii_case("OR") => "OR",
            Some(other) => {
                return Err(ApiError::bad_request(format!("join_condition {other} is not AND or OR")))
            }
        };
        if children.is_empty() {
            // An empty clause constrains nothing.
            return Ok("1".into());
        }
        let parts = children
            .iter()
            .map(|child| compile_filter(child, columns, params, depth + 1).map(|sql| format!("({sql})")))
            .collect::<ApiResult<Vec<_>>>()?;
        return Ok(parts.join(&format!(" {join} ")));
    }
    let expr = column(obj.get("column"), columns)?;
    let operator = match obj.get("operator") {
        None | Some(Value::Null) => "=".to_owned(),
        Some(Value::String(s)) => s.trim().to_ascii_uppercase(),
        Some(_) => return Err(ApiError::bad_request("operator must be a string")),
    };
    let value = obj.get("value").ok_or_else(|| ApiError::bad_request("a filter node needs a `value`"))?;
    match operator.as_str() {
        "=" | "!=" | ">" | "<" | ">=" | "<=" | "LIKE" => {
            let value = match value {
                // A one-element list is how a tuple-typed value arrives.
                Value::Array(items) if items.len() == 1 => &items[0],
                other => other,
            };
            if value.is_null() {
                return match operator.as_str() {
                    "=" => Ok(format!("{expr} IS NULL")),
                    "!=" => Ok(format!("{expr} IS NOT NULL")),
                    _ => Err(ApiError::bad_request(format!("operator {operator} needs a non-null value"))),
                };
            }
            params.push(scalar(value, &operator)?);
            Ok(format!("{expr} {operator} ?"))
        }
        "IN" | "NOT IN" => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            if items.is_empty() {
                return Ok(if operator == "IN" { "0" } else { "1" }.into());
            }
            for item in &items {
                params.push(scalar(item, &operator)?);
            }
            let marks = vec!["?"; items.len()].join(", ");
            Ok(format!("{expr} {operator} ({marks})"))
        }
        other => Err(ApiError::bad_request(format!(
            "unknown operator `{other}` (one of =, !=, >, <, >=, <=, LIKE, IN, NOT IN)"
        ))),
    }
}

fn scalar(value: &Value, operator: &str) -> ApiResult<SqlValue> {
    Ok(match value {
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        _ => {
            return Err(ApiError::bad_request(format!(
                "operator {operator}: values must be strings or numbers"
            )))
        }
    })
}

fn compile_sort(sort: &Value, columns: Columns) -> ApiResult<String> {
    let children = sort
        .get("children")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("sort must be an object {children: [...]}"))?;
    let mut terms = Vec::new();
    for child in children {
        let obj = child.as_object().ok_or_else(|| ApiError::bad_request("a sort node must be an object"))?;
        let expr = column(obj.get("column"), columns)?;
        let direction = match obj.get("direction") {
            None | Some(Value::Null) => "ASC",
            Some(Value::String(s)) if s.eq_ignore_ascii_case("ASC") => "ASC",
            Some(Value::String(s)) if s.eq_ignore_ascii_case("DESC") => "DESC",
            Some(other) => {
                return Err(ApiError::bad_request(format!("sort direction {other} is not ASC or DESC")))
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

    #[test]
    fn nested_filters_bind_every_value() {
        let c = Compiled::new(
            &json!({"filter": {"join_condition": "OR", "children": [
                {"table": "Models", "column": "Name", "operator": "LIKE", "value": "e%"},
                {"children": [{"table": "Models", "value": "x"}, {"column": "name", "operator": "not in", "value": ["a", 2]}]}
            ]}, "sort": {"children": [{"table": "Models", "column": "Name", "direction": "DESC"}]},
            "page": {"limit": 5, "offset": 1}}),
            COLS,
        )
        .unwrap();
        assert_eq!(
            c.sql("SELECT json FROM models", "account_id = ?"),
            "SELECT json FROM models WHERE (account_id = ?) AND ((name LIKE ?) OR ((id = ?) AND (name NOT IN (?, ?)))) \
             ORDER BY name DESC, rowid LIMIT ? OFFSET ?"
        );
        assert_eq!(c.params(vec![SqlValue::Text("acc".into())]).len(), 7);
    }

    #[test]
    fn unknown_columns_and_operators_are_named() {
        let detail = |constraints: Value| Compiled::new(&constraints, COLS).err().unwrap().detail;
        let err = detail(json!({"filter": {"children": [{"table": "t", "column": "Secret", "value": 1}]}}));
        assert!(err.contains("`Secret`"), "{err}");
        let err = detail(json!({"filter": {"children": [{"table": "t", "operator": "~", "value": 1}]}}));
        assert!(err.contains("`~`"), "{err}");
        assert!(Compiled::new(&json!({"page": {"limit": -1, "offset": 0}}), COLS).is_err());
    }
}
