//! The JSON reader for the plugin configuration: RFC 8259 text into a small
//! tree, and typed access that names the offending field.
//!
//! Purpose-built rather than serde: the configuration is read once per load,
//! and a general deserializer (with float formatting and path tracking) was
//! the largest part of the module. Numbers keep their literal text, so an
//! error can quote exactly what the user wrote; only unsigned integers are
//! ever converted.

use crate::config::ConfigError;

/// Nesting deeper than this is refused (the configuration needs 5 levels).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's literal text, checked against the JSON grammar.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order (duplicates are kept and refused on access).
    Object(Vec<(String, Value)>),
}

impl Value {
    /// What the value is, in error messages: `string "80"`, `integer `7``.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Number(n) if n.contains(['.', 'e', 'E']) => format!("floating point `{n}`"),
            Value::Number(n) => format!("integer `{n}`"),
            Value::String(s) => format!("string {s:?}"),
            Value::Array(_) => "sequence".into(),
            Value::Object(_) => "map".into(),
        }
    }
}

/// Parses a whole document; the error says what and where (line, column).
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(bytes, e.valid_up_to());
        format!("not UTF-8 at line {line} column {column}")
    })?;
    let mut p = Parser {
        text: text.as_bytes(),
        at: 0,
    };
    p.blank();
    let value = p.value(1)?;
    p.blank();
    if p.at < p.text.len() {
        return Err(p.error("trailing characters"));
    }
    Ok(value)
}

/// 1-based line and column of byte offset `at`.
fn position(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = bytes.get(..at).unwrap_or(bytes);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
    (line, column)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        let (line, column) = position(self.text, self.at);
        format!("{what} at line {line} column {column}")
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn blank(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eof(&self, inside: &str) -> String {
        self.error(&format!("EOF while parsing {inside}"))
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self
            .text
            .get(self.at..)
            .is_some_and(|t| t.starts_with(word.as_bytes()))
        {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        match self.peek() {
            None => Err(self.eof("a value")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.object(depth),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.blank();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.blank();
            items.push(self.value(depth + 1)?);
            self.blank();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.eof("a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.at += 1;
        let mut members = Vec::new();
        self.blank();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.blank();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.eof("an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.string()?;
            self.blank();
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return Err(self.eof("an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            self.blank();
            let value = self.value(depth + 1)?;
            members.push((key, value));
            self.blank();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.eof("an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        match self.digits() {
            0 => return Err(self.error("invalid number")),
            n if leading_zero && n > 1 => return Err(self.error("invalid number")),
            _ => {}
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let literal = self.text.get(start..self.at).unwrap_or_default();
        Ok(Value::Number(String::from_utf8_lossy(literal).into_owned()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                None => return Err(self.eof("a string")),
                Some(d) => (d as char).to_digit(16),
            };
            n = n * 16 + digit.ok_or_else(|| self.error("invalid escape"))?;
            self.at += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.eof("a string"));
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.eof("a string"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => {
                            self.at -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => {
                    self.at -= 1;
                    return Err(self.error("control character in a string"));
                }
                _ => out.push(b),
            }
        }
        // The input is UTF-8 and escapes add whole characters.
        String::from_utf8(out).map_err(|_| self.error("not UTF-8"))
    }

    /// After `\u`: one character, from a surrogate pair if need be.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = match high {
            0xd800..=0xdbff => {
                if self.text.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&low) {
                    return Err(self.error("invalid surrogate pair in hex escape"));
                }
                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone trailing surrogate in hex escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid escape"))
    }
}

/// A JSON object being read as one configuration section: every member must
/// be known, none repeated; each getter names `at.key` in its error.
pub struct Object<'a> {
    at: String,
    members: &'a [(String, Value)],
}

/// Reads `value` as an object at field `at` ("" for the top level) whose
/// members are among `known`.
pub fn object<'a>(value: &'a Value, at: &str, known: &[&str]) -> Result<Object<'a>, ConfigError> {
    let Value::Object(members) = value else {
        let field = if at.is_empty() { "configuration" } else { at };
        return Err(ConfigError::new(field, "must be a JSON object"));
    };
    let obj = Object {
        at: at.to_string(),
        members,
    };
    for (i, (key, _)) in members.iter().enumerate() {
        if !known.contains(&key.as_str()) {
            let expected = known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConfigError::new(
                obj.field(key),
                format!("unknown field `{key}`, expected one of {expected}"),
            ));
        }
        if members.iter().take(i).any(|(k, _)| k == key) {
            return Err(ConfigError::new(
                obj.field(key),
                format!("duplicate field `{key}`"),
            ));
        }
    }
    Ok(obj)
}

impl<'a> Object<'a> {
    /// The path of member `key`: `pools[0].weight`.
    pub fn field(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    /// The member `key`; `null` reads as absent, as for any optional field.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| **v != Value::Null)
    }

    fn wrong_type(&self, key: &str, value: &Value, expected: &str) -> ConfigError {
        ConfigError::new(
            self.field(key),
            format!("invalid type: {}, expected {expected}", value.describe()),
        )
    }

    /// A member that must be there.
    pub fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError::new(self.field(key), format!("missing field `{key}`")))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong_type(key, v, "a string")),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, v, "a boolean")),
        }
    }

    pub fn u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => match n.parse::<u32>() {
                Ok(x) => Ok(Some(x)),
                _ if n.contains(['.', 'e', 'E']) => Err(self.wrong_type(key, v, "u32")),
                _ => Err(ConfigError::new(
                    self.field(key),
                    format!("invalid value: {}, expected u32", v.describe()),
                )),
            },
            Some(v) => Err(self.wrong_type(key, v, "u32")),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a [Value]>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(v) => Err(self.wrong_type(key, v, "a sequence")),
        }
    }

    /// A string member that must be one of `variants`.
    pub fn variant(
        &self,
        key: &str,
        variants: &'static [&'static str],
    ) -> Result<Option<&'static str>, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        match variants.iter().find(|v| **v == s) {
            Some(v) => Ok(Some(v)),
            None => Err(ConfigError::new(
                self.field(key),
                format!(
                    "unknown variant `{s}`, expected one of {}",
                    variants
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn parses_documents() {
        let cases: &[(&str, Value)] = &[
            ("null", Value::Null),
            (" true ", Value::Bool(true)),
            ("-0.5e+3", Value::Number("-0.5e+3".into())),
            ("0", Value::Number("0".into())),
            (r#""a\"\\\/\b\f\n\r\t""#, s("a\"\\/\u{8}\u{c}\n\r\t")),
            (r#""\u00e9\ud83d\ude00""#, s("é😀")),
            ("\"é\"", s("é")),
            ("[]", Value::Array(vec![])),
            (
                "[1, [2]]",
                Value::Array(vec![
                    Value::Number("1".into()),
                    Value::Array(vec![Value::Number("2".into())]),
                ]),
            ),
            (
                "{\"a\": {}, \"a\": null}",
                Value::Object(vec![
                    ("a".into(), Value::Object(vec![])),
                    ("a".into(), Value::Null),
                ]),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "EOF while parsing a value at line 1 column 1"),
            (b"{", "EOF while parsing an object at line 1 column 2"),
            (b"[1,", "EOF while parsing a value at line 1 column 4"),
            (b"{\"a\" 1}", "expected `:` at line 1 column 6"),
            (b"{a: 1}", "key must be a string at line 1 column 2"),
            (b"[1 2]", "expected `,` or `]` at line 1 column 4"),
            (b"{}\n x", "trailing characters at line 2 column 2"),
            (b"01", "invalid number at line 1 column 3"),
            (b"1.", "invalid number at line 1 column 3"),
            (b"-", "invalid number at line 1 column 2"),
            (b"+1", "expected value at line 1 column 1"),
            (b"1e", "invalid number at line 1 column 3"),
            (b"tru", "expected value at line 1 column 1"),
            (
                b"\"a\nb\"",
                "control character in a string at line 1 column 3",
            ),
            (b"\"\\x\"", "invalid escape at line 1 column 3"),
            (
                b"\"\\ud800\"",
                "lone leading surrogate in hex escape at line 1 column 8",
            ),
            (
                b"\"\\udc00\"",
                "lone trailing surrogate in hex escape at line 1 column 8",
            ),
            (b"\"\\u12\"", "invalid escape at line 1 column 6"),
            (b"\"abc", "EOF while parsing a string at line 1 column 5"),
            (b"\"\xff\"", "not UTF-8 at line 1 column 2"),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text),
                Err(want.to_string()),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .contains("nesting deeper"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn typed_access_names_the_field() {
        let v = parse(
            br#"{"n": 7, "neg": -1, "big": 4294967296, "f": 80.5, "e": 1e2, "s": "80",
                          "b": true, "nul": null, "l": [1], "m": {}, "d": 1, "d": 2}"#,
        )
        .unwrap();
        let known = ["n", "neg", "big", "f", "e", "s", "b", "nul", "l", "m", "d"];
        let dup = object(&v, "pools[0]", &known).err().unwrap();
        assert_eq!(
            (dup.field.as_str(), dup.reason.as_str()),
            ("pools[0].d", "duplicate field `d`")
        );
        let Value::Object(mut members) = v else {
            unreachable!()
        };
        members.pop();
        let v = Value::Object(members);
        let o = object(&v, "pools[0]", &known).unwrap();
        assert_eq!(o.u32("n"), Ok(Some(7)));
        assert_eq!(o.u32("nul"), Ok(None));
        assert_eq!(o.u32("absent"), Ok(None));
        let err = |r: Result<Option<u32>, ConfigError>| r.unwrap_err().to_string();
        assert_eq!(
            err(o.u32("neg")),
            "pools[0].neg: invalid value: integer `-1`, expected u32"
        );
        assert_eq!(
            err(o.u32("big")),
            "pools[0].big: invalid value: integer `4294967296`, expected u32"
        );
        assert_eq!(
            err(o.u32("f")),
            "pools[0].f: invalid type: floating point `80.5`, expected u32"
        );
        assert_eq!(
            err(o.u32("e")),
            "pools[0].e: invalid type: floating point `1e2`, expected u32"
        );
        assert_eq!(
            err(o.u32("s")),
            "pools[0].s: invalid type: string \"80\", expected u32"
        );
        assert_eq!(
            o.string("n").unwrap_err().to_string(),
            "pools[0].n: invalid type: integer `7`, expected a string"
        );
        assert_eq!(o.bool("b"), Ok(Some(true)));
        assert_eq!(
            o.array("m").unwrap_err().to_string(),
            "pools[0].m: invalid type: map, expected a sequence"
        );
        assert_eq!(o.array("l").map(|l| l.map(<[Value]>::len)), Ok(Some(1)));
        assert_eq!(
            o.required("weight", o.u32("weight").unwrap())
                .unwrap_err()
                .to_string(),
            "pools[0].weight: missing field `weight`"
        );
        let unknown = object(&v, "", &["n"]).err().unwrap();
        assert_eq!(unknown.field, "neg");
        assert_eq!(unknown.reason, "unknown field `neg`, expected one of `n`");
        let top = object(&Value::Array(vec![]), "", &[]).err().unwrap();
        assert_eq!(
            (top.field.as_str(), top.reason.as_str()),
            ("configuration", "must be a JSON object")
        );
    }
}
