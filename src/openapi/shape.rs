//! The notation of what a route answers ([`Op::data`](super::Op::data)) and of the named
//! schemas, read into JSON schemas.
//!
//! | notation | schema |
//! | --- | --- |
//! | `string`, `int`, `bool`, `null` | that type |
//! | `any` | any value; `object`: any object |
//! | `'ok'`, `0`, `true`, `false` | exactly that value |
//! | `Name` | the named schema (`#/components/schemas/Name`) |
//! | `[T]` | an array of `T` |
//! | `{a:T b?:U}` | an object with exactly these properties: `a` always, `b` when the answer has it |
//! | `{..Name c:T}` | the properties of the named object schema `Name`, and `c` |
//! | `{a:T ..}` | `a`, and any other properties |
//! | `T\|U` | either |
//!
//! An object lists its properties exactly (no others), so that an answer carrying a field
//! its document does not name fails validation.

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};

/// A parsed shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Str,
    Int,
    Bool,
    Null,
    Any,
    AnyObject,
    Text(String),
    Number(i64),
    Flag(bool),
    Named(String),
    List(Box<Shape>),
    Record { fields: Vec<Field>, open: bool },
    Either(Vec<Shape>),
}

/// A property of a [`Shape::Record`].
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub required: bool,
    pub shape: Shape,
}

/// Reads `spec`; `named` gives the notation of a named schema (for `..Name`). Panics naming
/// the spec when it is malformed: the specs are the tables of this module, and the unit test
/// builds every document.
pub fn parse(spec: &str, named: &dyn Fn(&str) -> Option<&'static str>) -> Shape {
    let mut p = Parser {
        text: spec,
        at: 0,
        named,
    };
    let shape = p.union();
    p.skip_space();
    assert!(p.at == spec.len(), "shape {spec:?}: unexpected text at {}", p.at);
    shape
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    named: &'a dyn Fn(&str) -> Option<&'static str>,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.text[self.at..].starts_with(|c: char| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.at..].starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) {
        assert!(
            self.eat(token),
            "shape {:?}: expected {token:?} at {}",
            self.text,
            self.at
        );
    }

    fn word(&mut self) -> &str {
        self.skip_space();
        let start = self.at;
        let len = self.text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(self.text.len() - start);
        self.at += len;
        assert!(len > 0, "shape {:?}: expected a word at {start}", self.text);
        &self.text[start..self.at]
    }

    fn union(&mut self) -> Shape {
        let mut either = vec![self.term()];
        while self.eat("|") {
            either.push(self.term());
        }
        if either.len() == 1 {
            either.pop().expect("one")
        } else {
            Shape::Either(either)
        }
    }

    fn term(&mut self) -> Shape {
        if self.eat("[") {
            let item = self.union();
            self.expect("]");
            return Shape::List(Box::new(item));
        }
        if self.eat("{") {
            return self.record();
        }
        if self.eat("'") {
            let end = self.text[self.at..]
                .find('\'')
                .unwrap_or_else(|| panic!("shape {:?}: unclosed '", self.text));
            let text = self.text[self.at..self.at + end].to_owned();
            self.at += end + 1;
            return Shape::Text(text);
        }
        let text = self.text;
        let word = self.word();
        match word {
            "string" => Shape::Str,
            "int" => Shape::Int,
            "bool" => Shape::Bool,
            "null" => Shape::Null,
            "any" => Shape::Any,
            "object" => Shape::AnyObject,
            "true" => Shape::Flag(true),
            "false" => Shape::Flag(false),
            w if w.starts_with(|c: char| c.is_ascii_digit()) => Shape::Number(
                w.parse()
                    .unwrap_or_else(|_| panic!("shape {text:?}: {w} is not an integer")),
            ),
            w if w.starts_with(|c: char| c.is_ascii_uppercase()) => Shape::Named(w.to_owned()),
            w => panic!("shape {text:?}: unknown type {w}"),
        }
    }

    fn record(&mut self) -> Shape {
        let mut fields: Vec<Field> = Vec::new();
        let mut open = false;
        loop {
            if self.eat("}") {
                break;
            }
            if self.eat("..") {
                if self.text[self.at..].starts_with(|c: char| c.is_ascii_uppercase()) {
                    let name = self.word().to_owned();
                    let spec = (self.named)(&name)
                        .unwrap_or_else(|| panic!("shape {:?}: no schema {name}", self.text));
                    match parse(spec, self.named) {
                        Shape::Record { fields: more, .. } => fields.extend(more),
                        _ => panic!("shape {:?}: {name} is not an object", self.text),
                    }
                } else {
                    open = true;
                }
                continue;
            }
            let name = self.word().to_owned();
            let required = !self.eat("?");
            self.expect(":");
            let shape = self.union();
            fields.retain(|f| f.name != name);
            fields.push(Field {
                name,
                required,
                shape,
            });
        }
        Shape::Record { fields, open }
    }
}

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

impl Shape {
    /// The JSON schema of the shape.
    pub fn schema(&self) -> RefOr<Schema> {
        match self {
            Shape::Str => typed(Type::String).build().into(),
            Shape::Int => typed(Type::Integer).build().into(),
            Shape::Bool => typed(Type::Boolean).build().into(),
            Shape::Null => typed(Type::Null).build().into(),
            // Every type, named: utoipa reads a schema without `type` back as no schema.
            Shape::Any => ObjectBuilder::new()
                .schema_type(SchemaType::Array(vec![
                    Type::String,
                    Type::Number,
                    Type::Boolean,
                    Type::Object,
                    Type::Array,
                    Type::Null,
                ]))
                .build()
                .into(),
            Shape::AnyObject => typed(Type::Object).build().into(),
            Shape::Text(t) => typed(Type::String).enum_values(Some([t.as_str()])).build().into(),
            Shape::Number(n) => typed(Type::Integer).enum_values(Some([*n])).build().into(),
            Shape::Flag(b) => typed(Type::Boolean).enum_values(Some([*b])).build().into(),
            Shape::Named(n) => Ref::from_schema_name(n.as_str()).into(),
            Shape::List(item) => ArrayBuilder::new().items(item.schema()).build().into(),
            Shape::Record { fields, open } => {
                let mut o = typed(Type::Object);
                for f in fields {
                    o = o.property(f.name.as_str(), f.shape.schema());
                    if f.required {
                        o = o.required(f.name.as_str());
                    }
                }
                if !open {
                    o = o.additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
                }
                o.build().into()
            }
            Shape::Either(items) => {
                let mut any = AnyOfBuilder::new();
                for item in items {
                    any = any.item(item.schema());
                }
                any.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<&'static str> {
        Some("{a:int b?:string}")
    }

    #[test]
    fn the_notation_reads() {
        let shape = parse("{x:[int]|null y?:'ok' ..Base c:{..} d:0}", &none);
        let Shape::Record { fields, open } = shape else {
            panic!("a record")
        };
        assert!(!open);
        let names: Vec<_> = fields.iter().map(|f| (f.name.as_str(), f.required)).collect();
        assert_eq!(
            names,
            [
                ("x", true),
                ("y", false),
                ("a", true),
                ("b", false),
                ("c", true),
                ("d", true)
            ]
        );
        assert_eq!(
            fields[0].shape,
            Shape::Either(vec![Shape::List(Box::new(Shape::Int)), Shape::Null])
        );
        assert_eq!(
            fields[4].shape,
            Shape::Record {
                fields: vec![],
                open: true
            }
        );
        assert_eq!(fields[5].shape, Shape::Number(0));
        let json = serde_json::to_value(parse("{a:'更新成功'}", &none).schema()).unwrap();
        assert_eq!(json["properties"]["a"]["enum"][0], "更新成功");
        assert_eq!(json["additionalProperties"], false);
    }

    #[test]
    #[should_panic(expected = "unknown type")]
    fn a_wrong_type_is_refused() {
        parse("{a:integer}", &none);
    }
}
