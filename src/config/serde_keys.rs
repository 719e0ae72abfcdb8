//! The keys a `#[derive(Deserialize)]` struct reads, asked of serde itself, so that no list of
//! them is kept by hand beside the struct (and none can drift from it).

use serde::de::{Deserialize, Deserializer, Visitor};

/// The keys `T` reads, as serde names them (after `rename`, without `skip`ped fields).
pub fn of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(Ask) {
        Err(Told(keys)) => keys,
        Ok(_) => &[],
    }
}

/// A deserializer that only asks a struct for its keys.
struct Ask;

#[derive(Debug)]
struct Told(&'static [&'static str]);

impl std::fmt::Display for Told {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "keys: {:?}", self.0)
    }
}

impl std::error::Error for Told {}

impl serde::de::Error for Told {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Told(&[])
    }
}

impl<'de> Deserializer<'de> for Ask {
    type Error = Told;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Told> {
        Err(Told(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        keys: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Told> {
        Err(Told(keys))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Example {
        rack: u8,
        #[serde(rename = "port")]
        port_set: u16,
        #[serde(skip)]
        own: (),
    }

    #[test]
    fn the_keys_are_those_serde_reads() {
        assert_eq!(super::of::<Example>(), ["rack", "port"]);
    }
}
