//! Go `text/template` formats (`ls --format`, `inspect --format`) on top of gotmpl, with
//! docker-machine's `json` and `prettyjson` functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, Value};
use serde_json::Value as Json;

use crate::store::config::{to_go_json_compact, to_go_json_pretty};

/// A template that failed to parse or to execute.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template execution error: {0}")]
    Exec(String),
}

/// What a template does with a field its data does not have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MissingField {
    /// An execution error, as Go on a struct (`ls`, whose rows are Go structs).
    Error,
    /// `<no value>`, as Go on a map (`inspect`, which formats the record's JSON as a map).
    NoValue,
}

/// Parses a Go template with the `json` and `prettyjson` functions.
pub fn parse(text: &str, missing: MissingField) -> Result<Template, TemplateError> {
    let encode = |pretty: bool| {
        move |args: &[Value]| -> gotmpl::Result<Value> {
            let json = args.first().map(to_json).unwrap_or(Json::Null);
            let bytes = if pretty {
                to_go_json_pretty(&json)
            } else {
                to_go_json_compact(&json)
            };
            let bytes = bytes.map_err(|e| gotmpl::TemplateError::Exec(e.to_string()))?;
            Ok(Value::String(String::from_utf8_lossy(&bytes).into()))
        }
    };
    let missing = match missing {
        MissingField::Error => gotmpl::MissingKey::Error,
        MissingField::NoValue => gotmpl::MissingKey::Invalid,
    };
    Template::new("")
        .missing_key(missing)
        .func("json", encode(false))
        .func("prettyjson", encode(true))
        .parse(text)
        .map_err(|e| TemplateError::Parse(e.to_string()))
}

/// Executes a parsed template on a value.
pub fn render(template: &Template, data: &Value) -> Result<String, TemplateError> {
    template.execute_to_string(data).map_err(|e| match e {
        gotmpl::TemplateError::MissingKey { key } => {
            TemplateError::Exec(format!("can't evaluate field {key}"))
        }
        gotmpl::TemplateError::Exec(message) => TemplateError::Exec(message),
        e => TemplateError::Exec(e.to_string()),
    })
}

/// A JSON document as Go sees it after `json.Unmarshal` into `map[string]interface{}`:
/// numbers are float64, objects are maps.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Value::String(s.as_str().into()),
        Json::Array(a) => Value::List(a.iter().map(from_json).collect::<Vec<_>>().into()),
        Json::Object(o) => Value::Map(Arc::new(
            o.iter()
                .map(|(k, v)| (Arc::<str>::from(k.as_str()), from_json(v)))
                .collect::<BTreeMap<_, _>>(),
        )),
    }
}

/// The JSON form of a template value (for `json` and `prettyjson`).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Json::from(*f as i64),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        _ => Json::Null,
    }
}

/// A map value from string keys, for building template data.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(Arc::new(
        entries
            .into_iter()
            .map(|(k, v)| (Arc::<str>::from(k), v))
            .collect(),
    ))
}

/// A string value.
pub fn string(s: &str) -> Value {
    Value::String(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(tpl: &str, data: &Json) -> String {
        render(
            &parse(tpl, MissingField::NoValue).unwrap(),
            &from_json(data),
        )
        .unwrap()
    }

    #[test]
    fn missing_fields_as_on_a_map_or_a_struct() {
        let data = from_json(&json!({"A": "x", "N": null, "O": {"B": 1}}));
        let map = |tpl| render(&parse(tpl, MissingField::NoValue).unwrap(), &data);
        assert_eq!(
            map("{{.A}} {{.Nope}} {{.N}} {{.O.Nope}}").unwrap(),
            "x <no value> <no value> <no value>"
        );
        let strict = |tpl| render(&parse(tpl, MissingField::Error).unwrap(), &data);
        assert_eq!(strict("{{.A}} {{.N}} {{.O.B}}").unwrap(), "x <no value> 1");
        for bad in ["{{.Nope}}", "{{.O.Nope}}", "{{if .Nope}}{{end}}"] {
            let err = strict(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("template execution error: can't evaluate field Nope"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn go_printing_of_values() {
        let data = json!({"S": "x", "N": 22, "F": 0.5, "L": ["a", "b"], "E": [], "Z": null, "B": true,
            "M": {"b": 1, "a": "q"}});
        assert_eq!(run("{{.S}} {{.N}} {{.F}} {{.B}}", &data), "x 22 0.5 true");
        assert_eq!(run("{{.L}} {{.E}}", &data), "[a b] []");
        assert_eq!(run("{{.M}}", &data), "map[a:q b:1]");
        assert_eq!(run("{{range .L}}<{{.}}>{{end}}", &data), "<a><b>");
        assert_eq!(run("{{if .B}}yes{{else}}no{{end}}", &data), "yes");
    }

    #[test]
    fn json_functions_match_go() {
        let data =
            json!({"D": {"IPAddress": "1.2.3.4", "SSHPort": 22, "Tags": ["<a>"]}, "N": "generic"});
        assert_eq!(run("{{json .N}}", &data), "\"generic\"");
        assert_eq!(
            run("{{json .D}}", &data),
            r#"{"IPAddress":"1.2.3.4","SSHPort":22,"Tags":["\u003ca\u003e"]}"#
        );
        assert_eq!(
            run("{{prettyjson .D.Tags}}", &data),
            "[\n    \"\\u003ca\\u003e\"\n]"
        );
    }

    #[test]
    fn bad_templates_are_parse_errors() {
        for bad in ["{{", "{{.Name", "{{if}}", "{{.A | }}"] {
            let err = parse(bad, MissingField::NoValue)
                .err()
                .unwrap_or_else(|| panic!("{bad} must fail"))
                .to_string();
            assert!(err.starts_with("template parsing error: "), "{bad}: {err}");
        }
    }
}
