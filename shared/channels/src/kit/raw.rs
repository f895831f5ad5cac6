//! Reading provider JSON without building a `serde_json::Value` tree: an
//! object's members stay borrowed, unparsed slices of the body
//! (`RawValue`) until one is read, and strings without escapes are borrowed
//! too. A tree allocated a key, a string and map nodes for every member, and
//! was most of a small update's admission time.
//!
//! Reads mean what the `Value` readers in [`super::json`] mean: a member of
//! the wrong type is absent, and of duplicate keys the last one counts.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use switchboard_domain::{Attachment, AttachmentKind};

use super::ParseError;
use super::json::{MediaFields, media};

/// A JSON object whose members are read on demand; empty when the JSON is
/// not an object.
#[derive(Debug, Default)]
pub struct Object<'a> {
    raw: Option<&'a RawValue>,
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Object<'a> {
    /// A request body: not JSON is the same error as a `Value` parse gives.
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let raw: &RawValue = serde_json::from_slice(body)?;
        Ok(Self::of(raw))
    }

    /// A member's value as an object (empty when it is something else).
    pub fn of(raw: &'a RawValue) -> Self {
        let members = match raw.get().starts_with('{') {
            true => serde_json::from_str::<Members>(raw.get()).map_or_else(|_| Vec::new(), |m| m.0),
            false => Vec::new(),
        };
        Self {
            raw: Some(raw),
            members,
        }
    }

    /// The member's unparsed value.
    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        let found = self.members.iter().rev().find(|(name, _)| name == key);
        found.map(|(_, value)| *value)
    }

    /// The member, when it is an object.
    pub fn object(&self, key: &str) -> Option<Object<'a>> {
        self.raw(key)
            .filter(|raw| raw.get().starts_with('{'))
            .map(Object::of)
    }

    /// The member's items, when it is an array.
    pub fn items(&self, key: &str) -> Option<Vec<&'a RawValue>> {
        let raw = self.raw(key).filter(|raw| raw.get().starts_with('['))?;
        serde_json::from_str(raw.get()).ok()
    }

    /// The member's items that are objects, when it is an array.
    pub fn objects(&self, key: &str) -> Vec<Object<'a>> {
        let items = self.items(key).unwrap_or_default().into_iter();
        items
            .filter(|raw| raw.get().starts_with('{'))
            .map(Object::of)
            .collect()
    }

    /// The member, when it is an integer that fits an `i64`.
    pub fn int(&self, key: &str) -> Option<i64> {
        serde_json::from_str(self.raw(key)?.get()).ok()
    }

    /// The integer `key` of the member `object` (a `/object/key` pointer).
    pub fn int_in(&self, object: &str, key: &str) -> Option<i64> {
        self.object(object)?.int(key)
    }

    /// The member, when it is a string.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.raw(key)?.get();
        serde_json::from_str::<Text<'a>>(raw)
            .ok()
            .map(|text| text.0)
    }

    /// The member, when it is a string, as an owned one.
    pub fn string(&self, key: &str) -> Option<String> {
        self.str(key).map(Cow::into_owned)
    }

    /// The first of the members that is a string and not blank.
    pub fn first_string(&self, keys: &[&str]) -> Option<String> {
        let present = |key: &&str| self.str(key).filter(|text| !text.trim().is_empty());
        keys.iter().find_map(present).map(Cow::into_owned)
    }

    pub fn is_true(&self, key: &str) -> bool {
        self.raw(key).is_some_and(|raw| raw.get() == "true")
    }

    /// A Telegram-style user object's name: "First Last", else the username.
    pub fn person_name(&self) -> Option<String> {
        let (first, last) = (self.str("first_name"), self.str("last_name"));
        let username = self.str("username");
        super::json::full_name(first.as_deref(), last.as_deref(), username.as_deref())
    }

    /// The attachments listed in the member `key` (see [`super::json::media_list`]).
    pub fn media_list(
        &self,
        key: &str,
        kind: Option<AttachmentKind>,
        fields: &MediaFields,
    ) -> Vec<Attachment> {
        let Some(list) = self.raw(key).filter(|raw| raw.get().starts_with('[')) else {
            return Vec::new();
        };
        let list: Vec<Value> = serde_json::from_str(list.get()).unwrap_or_default();
        list.iter()
            .filter_map(|item| media(item, kind, fields))
            .collect()
    }

    /// The whole object as a `Value` when it has one of the members in
    /// `keys` (separated by spaces), for parts rare enough not to matter.
    pub fn value_if_any(&self, keys: &str) -> Option<Value> {
        let any = keys.split(' ').any(|key| self.raw(key).is_some());
        any.then(|| self.value())
    }

    /// The whole object as a `Value`, for paths rare enough not to matter.
    pub fn value(&self) -> Value {
        let raw = self.raw.map_or("null", RawValue::get);
        serde_json::from_str(raw).unwrap_or_default()
    }
}

/// A string, borrowed from the body when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Text(key), value)) = map.next_entry::<Text, &RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_as_value_reads_them() {
        let body = br#"{"a":1,"s":"x\/y","plain":"z","t":true,"f":"true","o":{"n":-5,"big":18446744073709551615,"e":1e3},"a":2,"arr":[1]}"#;
        let object = Object::parse(body).unwrap();
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(object.int("a"), value["a"].as_i64());
        assert_eq!(object.int("a"), Some(2));
        assert_eq!(object.str("s").as_deref(), Some("x/y"));
        assert!(matches!(object.str("plain"), Some(Cow::Borrowed("z"))));
        assert_eq!(object.str("a"), None);
        assert!(object.is_true("t") && !object.is_true("f") && !object.is_true("missing"));
        let named = Object::parse(br#"{"blank":" ","n":1,"name":"Ann","later":"Bo"}"#).unwrap();
        assert_eq!(
            named
                .first_string(&["none", "blank", "n", "name", "later"])
                .as_deref(),
            Some("Ann")
        );
        assert_eq!(named.first_string(&["blank", "n"]), None);
        assert_eq!(
            (named.string("name").as_deref(), named.string("n")),
            (Some("Ann"), None)
        );
        let list = Object::parse(br#"{"l":[{"a":1},2,{"a":3}],"o":{}}"#).unwrap();
        let ints: Vec<_> = list.objects("l").iter().map(|o| o.int("a")).collect();
        assert_eq!(ints, [Some(1), Some(3)]);
        assert!(list.objects("o").is_empty() && list.objects("none").is_empty());
        let inner = object.object("o").unwrap();
        assert_eq!(inner.int("n"), Some(-5));
        assert_eq!((inner.int("big"), inner.int("e")), (None, None));
        assert!(object.object("arr").is_none() && object.object("s").is_none());
        assert_eq!(object.items("arr").unwrap().len(), 1);
        assert!(object.items("o").is_none() && object.items("none").is_none());
        assert_eq!(object.value(), value);
        assert!(Object::parse(b"[1,2]").unwrap().int("a").is_none());
        assert!(Object::parse(b"{\"a\":").is_err());
        assert!(Object::parse(b"\xff").is_err());
    }
}
