//! Answering a [`Query`] with one statement on the indexed query columns.

use std::borrow::Cow;

use sqlx::{Arguments, AssertSqlSafe, Database};

use super::rows::{ENTRY_COLUMNS, decode_entry};
use super::{Argument, Dialect, SqlStore};
use crate::StoreError;
use crate::model::EntryKind;
use crate::store::query::page_from_fetched;
use crate::store::{Order, Page, Query};

/// One page of the entries that match `query`, in its order.
pub(crate) async fn query<S: SqlStore>(store: &S, query: &Query) -> Result<Page, StoreError> {
    query.validate()?;
    let (sql, arguments) = query_sql::<S::Db>(query)?;
    let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
        .fetch_all(S::Db::on_pool(store.pool()))
        .await
        .map_err(|err| store.classify(err))?;
    let entries = rows
        .iter()
        .map(|row| decode_entry("", row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page_from_fetched(entries, query))
}

/// A statement's text and its arguments, built together so that every
/// value is a bound parameter in the dialect's placeholder.
struct Statement<D: Database> {
    text: String,
    arguments: D::Arguments,
}

impl<D: Dialect> Statement<D> {
    fn push(&mut self, fragment: &str) {
        self.text.push_str(fragment);
    }

    fn bind(&mut self, value: Argument<'_>) -> Result<(), StoreError> {
        D::add(&mut self.arguments, value)
            .map_err(|err| StoreError::InvalidQuery(err.to_string()))?;
        self.arguments
            .format_placeholder(&mut self.text)
            .map_err(|err| StoreError::InvalidQuery(err.to_string()))
    }
}

/// The SQL and arguments of one page of a query. Every value is a bound
/// parameter; only fixed fragments of this function go into the text.
pub(crate) fn query_sql<D: Dialect>(query: &Query) -> Result<(String, D::Arguments), StoreError> {
    let mut sql = Statement::<D> {
        text: format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE 1 = 1"),
        arguments: D::Arguments::default(),
    };
    if !query.include_restricted {
        sql.push(" AND ");
        sql.push(D::NOT_RESTRICTED);
    }
    if query.kind.is_some_and(|kind| kind != EntryKind::Event) {
        // Lets the planner use the partial index of the trail's records.
        sql.push(" AND kind <> 'event'");
    }
    fn copy<D: Dialect>(value: Option<&str>) -> Option<Cow<'_, str>> {
        value.map(D::copy_text)
    }
    let ip = query.ip.map(|ip| ip.to_string());
    let texts = [
        ("trail", copy::<D>(query.trail.as_deref())),
        ("kind", query.kind.map(|kind| kind.as_str().into())),
    ];
    for (column, value) in texts {
        if let Some(value) = value {
            sql.push(&format!(" AND {column} = "));
            sql.bind(Argument::Text(&value))?;
        }
    }
    let times = [
        (">=", query.since.map(|time| time.timestamp_micros())),
        ("<", query.until.map(|time| time.timestamp_micros())),
    ];
    for (comparison, micros) in times {
        if let Some(micros) = micros {
            sql.push(&format!(" AND recorded_at {comparison} "));
            sql.bind(Argument::Micros(micros))?;
        }
    }
    let copies = [
        ("action", copy::<D>(query.action.as_deref())),
        ("tenant", copy::<D>(query.tenant.as_deref())),
        ("actor", copy::<D>(query.actor.as_deref())),
        ("target_type", copy::<D>(query.target_type.as_deref())),
        ("target_id", copy::<D>(query.target_id.as_deref())),
        ("outcome", copy::<D>(query.outcome.as_deref())),
        ("ip", copy::<D>(ip.as_deref())),
        ("request_id", copy::<D>(query.request_id.as_deref())),
    ];
    for (column, value) in copies {
        if let Some(value) = value {
            sql.push(&format!(" AND {column} = "));
            sql.bind(Argument::Text(&value))?;
        }
    }
    let (comparison, direction) = match query.order {
        Order::OldestFirst => (">", "ASC"),
        Order::NewestFirst => ("<", "DESC"),
    };
    if let Some(cursor) = &query.after {
        let seq = i64::try_from(cursor.seq())
            .map_err(|_| StoreError::InvalidQuery("cursor seq out of range".to_owned()))?;
        sql.push(&format!(" AND (recorded_at, trail, seq) {comparison} ("));
        sql.bind(Argument::Micros(cursor.recorded_at_micros()))?;
        sql.push(", ");
        sql.bind(Argument::Text(cursor.trail()))?;
        sql.push(", ");
        sql.bind(Argument::Integer(seq))?;
        sql.push(")");
    }
    sql.push(&format!(
        " ORDER BY recorded_at {direction}, trail {direction}, seq {direction} LIMIT "
    ));
    // One more than the page, to learn whether a next page exists.
    let fetch = i64::try_from(query.limit + 1).unwrap_or(i64::MAX);
    sql.bind(Argument::Integer(fetch))?;
    Ok((sql.text, sql.arguments))
}
