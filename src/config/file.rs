//! The configuration file (TOML): reading with precise errors, and writing.
//!
//! The keys follow the parameter model: general parameter `dlm.meter.connection` is key
//! `connection` in table `[dlm.meter]`; charging-point parameter `meter.kind` of charging
//! point 2 is key `kind` in `[charging_point.2.meter]`. Besides the parameters the file holds
//! what ETS programs outside the parameter memory:
//!
//! * `[knx] individual_address = "1.1.10"`;
//! * `[group_addresses]`: object number → list of group addresses, the first being the
//!   sending address (`55 = ["1/0/5", "0/0/55"]`).
//!
//! Every problem is reported with line and column and the key: syntax errors, unknown keys,
//! wrong types, out-of-range values, unknown object numbers, bad group addresses. Reading
//! collects all problems of a file rather than stopping at the first.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::{Config, ConfigError};
use crate::etsdb::{ParamModel, ParamSet, ParamSpec};
use crate::knx::link::LinkSpec;
use crate::knx::{GroupAddress, IndividualAddress};
use crate::objects::TableSpec;
use crate::units::{ChargePointId, GoNumber};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key concerned (dotted path), if any.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "{}:{}: `{key}`: {}",
                self.line, self.column, self.message
            ),
            None => write!(f, "{}:{}: {}", self.line, self.column, self.message),
        }
    }
}

/// Loading a config file failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file has problems (syntax, keys, values).
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        /// File path (or `<config>` for text).
        path: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// The parameters are valid one by one but do not form a configuration.
    #[error("{path}: {source}")]
    Config {
        /// File path.
        path: String,
        /// Cause.
        source: ConfigError,
    },
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{path}:{p}");
    }
    out
}

/// Largest config file read: a full configuration of five charging points is about 20 KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads and parses a config file. A file above [`MAX_CONFIG_BYTES`] is refused before it is
/// read; text that is not UTF-8 is refused with the line and column of the first bad byte.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    use std::io::Read as _;
    let origin = path.display().to_string();
    let io = |source| LoadError::Io {
        path: origin.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let invalid = |line, column, message: String| LoadError::Invalid {
        path: origin.clone(),
        problems: vec![Problem {
            line,
            column,
            key: None,
            message,
        }],
    };
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(invalid(
            1,
            1,
            format!("file larger than {MAX_CONFIG_BYTES} bytes; not a configuration file?"),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let before = e.as_bytes().get(..good).unwrap_or_default();
            // The prefix is valid UTF-8 by definition.
            let prefix = std::str::from_utf8(before).unwrap_or_default();
            let (line, column) = line_col(prefix, prefix.len());
            let byte = e.as_bytes().get(good).copied().unwrap_or_default();
            return Err(invalid(
                line,
                column,
                format!("not UTF-8 text: byte 0x{byte:02x}; save the file as UTF-8"),
            ));
        }
    };
    parse(&text, &origin)
}

/// Parses config text; `origin` names the text in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, LoadError> {
    let invalid = |problems| LoadError::Invalid {
        path: origin.to_owned(),
        problems,
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let message = e.message().trim().to_owned();
            return Err(invalid(vec![Problem {
                line,
                column,
                key: None,
                message,
            }]));
        }
    };
    let mut reader = Reader {
        text,
        params: ParamSet::defaults(),
        individual_address: None,
        link: None,
        associations: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut leaves = Vec::new();
    flatten(root.get_ref(), &mut Vec::new(), &mut leaves);
    for leaf in &leaves {
        reader.apply(leaf);
    }
    if !reader.problems.is_empty() {
        reader.problems.sort_by_key(|p| (p.line, p.column));
        return Err(invalid(reader.problems));
    }
    let ia = reader
        .individual_address
        .unwrap_or(IndividualAddress::UNCONFIGURED);
    let mut config =
        Config::from_params(&reader.params, ia, reader.associations).map_err(|source| {
            LoadError::Config {
                path: origin.to_owned(),
                source,
            }
        })?;
    config.knx.link = reader.link;
    Ok(config)
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A key/value pair at the bottom of the tree.
struct Leaf<'a> {
    path: Vec<String>,
    key_span: Range<usize>,
    value: &'a DeValue<'a>,
    value_span: Range<usize>,
}

fn flatten<'a>(table: &'a DeTable<'a>, path: &mut Vec<String>, out: &mut Vec<Leaf<'a>>) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        match value.get_ref() {
            // `group_addresses` keeps its numbered keys as leaves, like any other table.
            DeValue::Table(inner) => flatten(inner, path, out),
            other => out.push(Leaf {
                path: path.clone(),
                key_span: key.span(),
                value: other,
                value_span: value.span(),
            }),
        }
        path.pop();
    }
}

/// Converts a parsed value into a `toml::Value` (for parameter conversion).
fn to_value(v: &DeValue<'_>) -> Result<toml::Value, String> {
    Ok(match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => toml::Value::Integer(
            i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("integer {i} is out of range"))?,
        ),
        DeValue::Float(f) => {
            toml::Value::Float(f.as_str().parse().map_err(|_| format!("bad float {f}"))?)
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(_) => return Err("dates and times are not used in this file".to_owned()),
        DeValue::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|i| to_value(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(_) => return Err("a table is not allowed here".to_owned()),
    })
}

struct Reader<'t> {
    text: &'t str,
    params: ParamSet,
    individual_address: Option<IndividualAddress>,
    link: Option<LinkSpec>,
    associations: BTreeMap<GoNumber, Vec<GroupAddress>>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.problems.push(Problem {
            line,
            column,
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    fn apply(&mut self, leaf: &Leaf<'_>) {
        let full = leaf.path.join(".");
        let value = match to_value(leaf.value) {
            Ok(v) => v,
            Err(e) => return self.problem(&leaf.value_span, &full, e),
        };
        match leaf.path.first().map(String::as_str) {
            Some("group_addresses") => self.group_addresses(leaf, &full, &value),
            Some("charging_point") => self.charging_point(leaf, &full, &value),
            _ if full == "knx.individual_address" => match value
                .as_str()
                .map(str::parse::<IndividualAddress>)
            {
                Some(Ok(ia)) => self.individual_address = Some(ia),
                Some(Err(e)) => self.problem(&leaf.value_span, &full, e.to_string()),
                None => self.problem(&leaf.value_span, &full, "expected a string like \"1.1.10\""),
            },
            _ if full == "knx.link" => match value.as_str().map(str::parse::<LinkSpec>) {
                Some(Ok(link)) => self.link = Some(link),
                Some(Err(e)) => self.problem(&leaf.value_span, &full, e.to_string()),
                None => self.problem(
                    &leaf.value_span,
                    &full,
                    "expected a string like \"server://0.0.0.0:3671\"",
                ),
            },
            _ => {
                let model = ParamModel::get();
                if let Some(spec) = model
                    .general_index(&full)
                    .and_then(|i| model.general.get(i))
                {
                    self.set(spec, None, leaf, &full, &value);
                } else {
                    let candidates = model.general.iter().map(|p| p.key.as_str());
                    let msg = unknown_key_message("", &full, candidates);
                    self.problem(&leaf.key_span, &full, msg);
                }
            }
        }
    }

    fn set(
        &mut self,
        spec: &ParamSpec,
        cp: Option<ChargePointId>,
        leaf: &Leaf<'_>,
        full: &str,
        value: &toml::Value,
    ) {
        let result = spec.from_toml(value).map_err(|e| e.clone()).and_then(|v| {
            match cp {
                Some(cp) => self.params.set_cp(cp, &spec.key, v),
                None => self.params.set(&spec.key, v),
            }
            .map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            self.problem(&leaf.value_span, full, format!("{value}: {e}"));
        }
    }

    fn charging_point(&mut self, leaf: &Leaf<'_>, full: &str, value: &toml::Value) {
        let Some(number) = leaf.path.get(1) else {
            return self.problem(
                &leaf.key_span,
                full,
                "expected tables [charging_point.1] … [charging_point.5]",
            );
        };
        let Some(cp) = number.parse::<u8>().ok().and_then(ChargePointId::new) else {
            return self.problem(
                &leaf.key_span,
                full,
                format!("charging point `{number}` does not exist; use 1 to 5"),
            );
        };
        let key = leaf
            .path
            .get(2..)
            .map(|rest| rest.join("."))
            .unwrap_or_default();
        let model = ParamModel::get();
        if let Some(spec) = model
            .cp_index(&key)
            .and_then(|i| model.charging_point.get(i))
        {
            self.set(spec, Some(cp), leaf, full, value);
        } else {
            let candidates = model.charging_point.iter().map(|p| p.key.as_str());
            let msg = unknown_key_message(&format!("charging_point.{cp}."), &key, candidates);
            self.problem(&leaf.key_span, full, msg);
        }
    }

    fn group_addresses(&mut self, leaf: &Leaf<'_>, full: &str, value: &toml::Value) {
        let spec = TableSpec::get();
        let number = match leaf.path.get(1).map(|n| n.parse::<u16>()) {
            Some(Ok(n)) if leaf.path.len() == 2 && spec.is_object_number(n) => n,
            Some(Ok(n)) if leaf.path.len() == 2 => {
                return self.problem(
                    &leaf.key_span,
                    full,
                    format!("there is no group object {n}"),
                );
            }
            _ => {
                return self.problem(
                    &leaf.key_span,
                    full,
                    "expected `<object number> = [\"main/middle/sub\", …]`",
                );
            }
        };
        let items: Vec<&toml::Value> = match value {
            toml::Value::Array(a) => a.iter().collect(),
            single @ toml::Value::String(_) => vec![single],
            _ => return self.problem(&leaf.value_span, full, "expected a list of group addresses"),
        };
        let mut list = Vec::new();
        for item in items {
            match item.as_str().map(str::parse::<GroupAddress>) {
                Some(Ok(ga)) if list.contains(&ga) => {
                    return self.problem(
                        &leaf.value_span,
                        full,
                        format!("group address {ga} is listed twice"),
                    );
                }
                Some(Ok(ga)) if ga.raw() == 0 => {
                    return self.problem(
                        &leaf.value_span,
                        full,
                        "0/0/0 is the broadcast address, not a group address",
                    );
                }
                Some(Ok(ga)) => list.push(ga),
                Some(Err(e)) => return self.problem(&leaf.value_span, full, e.to_string()),
                None => {
                    return self.problem(
                        &leaf.value_span,
                        full,
                        format!("{item} is not a group address string"),
                    );
                }
            }
        }
        self.associations.insert(GoNumber(number), list);
    }
}

/// "unknown key", with the closest keys of the same scope as a hint. `prefix` is prepended to
/// the suggestions (`charging_point.2.` for charging-point keys).
fn unknown_key_message<'a>(
    prefix: &str,
    key: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    let similar: Vec<String> = candidates
        .filter(|c| edit_distance(c, key) <= 2 || c.rsplit('.').next() == Some(last))
        .map(|c| format!("{prefix}{c}"))
        .collect();
    if similar.is_empty() {
        "unknown key".to_owned()
    } else {
        format!("unknown key (did you mean {}?)", similar.join(" or "))
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// Writes a configuration as a complete, commented config file.
///
/// Every general parameter is written; a charging point's block only when it differs from
/// the defaults. Reading the text back gives an equal [`Config`].
pub fn to_string(config: &Config) -> Result<String, ConfigError> {
    let params = config.to_params()?;
    let defaults = ParamSet::defaults();
    let mut out = String::from(
        "# knx-echarge configuration. Keys follow the parameter model in etsdb/parameters.toml;\n\
         # README.md, \"Configuration\", explains the format.\n",
    );
    let mut ia = format!("individual_address = \"{}\"", config.knx.individual_address);
    if let Some(link) = &config.knx.link {
        let _ = write!(
            ia,
            "\n# Bus link: tunnel://host:port, routing://interface-address, server://address:port\nlink = \"{link}\""
        );
    }
    write_block(&mut out, "", params.general(), Some(&ia));
    for cp in ChargePointId::all() {
        let changed = params
            .charging_point(cp)
            .zip(defaults.charging_point(cp))
            .any(|((_, a), (_, b))| a != b);
        if changed {
            write_block(
                &mut out,
                &format!("charging_point.{cp}"),
                params.charging_point(cp),
                None,
            );
        }
    }
    if !config.group_addresses.is_empty() {
        out.push_str("\n# Group addresses per object; the first is the sending address.\n[group_addresses]\n");
        for (number, list) in &config.group_addresses {
            let items: Vec<String> = list.iter().map(|ga| format!("\"{ga}\"")).collect();
            let _ = writeln!(out, "{number} = [{}]", items.join(", "));
        }
    }
    Ok(out)
}

/// Writes parameters grouped by table; `knx_line` (the individual address) opens `[knx]`.
fn write_block<'a>(
    out: &mut String,
    prefix: &str,
    params: impl Iterator<Item = (&'a ParamSpec, crate::etsdb::ParamValue)>,
    knx_line: Option<&str>,
) {
    let mut tables: Vec<(String, Vec<(&ParamSpec, String)>)> = Vec::new();
    for (spec, value) in params {
        let (table, key) = match spec.key.rsplit_once('.') {
            Some((t, k)) => (t.to_owned(), k.to_owned()),
            None => (String::new(), spec.key.clone()),
        };
        let table = match (prefix.is_empty(), table.is_empty()) {
            (true, _) => table,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{table}"),
        };
        let line = format!("{key} = {}", spec.to_toml(&value));
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, lines)) => lines.push((spec, line)),
            None => tables.push((table, vec![(spec, line)])),
        }
    }
    for (table, lines) in tables {
        let _ = writeln!(out, "\n[{table}]");
        if table == "knx"
            && let Some(line) = knx_line
        {
            let _ = writeln!(out, "# Individual address (programmed by ETS)\n{line}");
        }
        for (spec, line) in lines {
            let _ = writeln!(out, "# {}{}", spec.name_en, describe_range(spec));
            let _ = writeln!(out, "{line}");
        }
    }
}

fn describe_range(spec: &ParamSpec) -> String {
    let unit = spec
        .unit
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    match (spec.min, spec.max) {
        (Some(lo), Some(hi)) => format!(" ({lo}..={hi}{unit})"),
        _ if !spec.values.is_empty() => {
            let choices: Vec<String> = spec.values.iter().map(|v| v.value.to_string()).collect();
            format!(" ({})", choices.join(" | "))
        }
        _ => String::new(),
    }
}

/// Saves a configuration atomically (see [`crate::store::write_atomic`]).
pub fn save(config: &Config, path: &Path) -> Result<(), crate::store::StoreError> {
    let text = to_string(config).map_err(|e| crate::store::StoreError::Encode(e.to_string()))?;
    crate::store::write_atomic(path, text.as_bytes())
}
