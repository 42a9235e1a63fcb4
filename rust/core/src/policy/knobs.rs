//! The knob machinery: how a knob's value is written as text and read back, and the two
//! macros that declare a knob's value type ([`knob_enum!`]) and every knob of a policy
//! ([`policy_knobs!`]) once each.

use crate::error::quote;

/// A knob's value type: written as one word, read back from it.
pub trait KnobValue: Sized + Copy {
    fn to_text(self) -> String;
    /// `knob` names the knob in the error.
    fn from_text(s: &str, knob: &str) -> Result<Self, String>;
}

impl KnobValue for bool {
    fn to_text(self) -> String {
        self.to_string()
    }
    fn from_text(s: &str, knob: &str) -> Result<bool, String> {
        match s {
            "true" | "True" | "1" => Ok(true),
            "false" | "False" | "0" => Ok(false),
            _ => Err(format!("bad value {} for knob {knob}: true or false", quote(s))),
        }
    }
}

/// A struct size in bytes.
impl KnobValue for u32 {
    fn to_text(self) -> String {
        self.to_string()
    }
    fn from_text(s: &str, knob: &str) -> Result<u32, String> {
        s.parse::<u32>().map_err(|_| format!("bad value {} for knob {knob}: a byte count", quote(s)))
    }
}

/// An enum knob's value from its word, or the error listing every word.
pub(crate) fn parse_word<T: Copy>(s: &str, words: &[(T, &'static str)], knob: &str) -> Result<T, String> {
    words.iter().find(|(_, n)| *n == s).map(|(x, _)| *x).ok_or_else(|| {
        let all: Vec<&str> = words.iter().map(|(_, n)| *n).collect();
        format!("bad value {} for knob {knob}: one of {}", quote(s), all.join(", "))
    })
}

/// Declare an enum knob's value type with each variant's word:
/// `knob_enum! { /// doc  pub enum Name { /// doc  Variant = "word", … } }`.
macro_rules! knob_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $word:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every value with its word, in declaration order.
            pub const WORDS: &'static [($name, &'static str)] = &[$(($name::$v, $word)),*];
        }

        impl $crate::policy::knobs::KnobValue for $name {
            fn to_text(self) -> String {
                match self { $($name::$v => $word.to_string(),)* }
            }
            fn from_text(s: &str, knob: &str) -> Result<$name, String> {
                $crate::policy::knobs::parse_word(s, $name::WORDS, knob)
            }
        }
    };
}
pub(crate) use knob_enum;

/// Declare every knob once — its `Policy` field (or `sizes` field), type, meaning and the
/// kernel change that introduced its non-legacy value — and generate from that list the
/// `Policy` struct (fields in list order, then `sizes`), [`KNOBS`](super::KNOBS),
/// `Policy::knob_values` and `Policy::set_knob`.
macro_rules! policy_knobs {
    (
        $(#[$pm:meta])*
        pub struct Policy {
            $(#[$nm:meta])* pub name: String,
            $( $(#[$fm:meta])* pub $f:ident: $t:ty => $meaning:literal, $since:literal; )*
            sizes: StructSizes {
                $( $knob:literal => $sf:ident, $smeaning:literal, $ssince:literal; )*
            }
        }
    ) => {
        $(#[$pm])*
        pub struct Policy {
            $(#[$nm])* pub name: String,
            $( $(#[$fm])* pub $f: $t, )*
            /// Struct sizes for memory accounting (the `size_*` knobs).
            pub sizes: StructSizes,
        }

        /// Every knob: (name, meaning, the kernel change that introduced its non-legacy value).
        pub const KNOBS: &[(&str, &str, &str)] = &[
            $( (stringify!($f), $meaning, $since), )*
            $( ($knob, $smeaning, $ssince), )*
        ];

        impl Policy {
            /// Every knob's current value, as text, in `KNOBS` order.
            pub fn knob_values(&self) -> Vec<(&'static str, String)> {
                use $crate::policy::knobs::KnobValue;
                vec![
                    $( (stringify!($f), self.$f.to_text()), )*
                    $( ($knob, self.sizes.$sf.to_text()), )*
                ]
            }

            /// Set one knob from text (the names and values of `knob_values`).
            pub fn set_knob(&mut self, knob: &str, value: &str) -> Result<(), String> {
                use $crate::policy::knobs::KnobValue;
                match knob {
                    $( stringify!($f) => self.$f = <$t>::from_text(value, knob)?, )*
                    $( $knob => self.sizes.$sf = u32::from_text(value, knob)?, )*
                    "name" => self.name = value.to_string(),
                    _ => {
                        let all: Vec<&str> = KNOBS.iter().map(|k| k.0).collect();
                        return Err(format!(
                            "unknown knob {}; knobs: {}",
                            $crate::error::quote(knob),
                            all.join(", ")
                        ));
                    }
                }
                Ok(())
            }
        }
    };
}
pub(crate) use policy_knobs;
