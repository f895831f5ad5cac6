//! The WeChat family's flat XML: any bytes read without panic, in linear
//! time; and what `build` writes (element names from the input, any text)
//! reads back to the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::kit::xml;

fuzz_target!(|data: &[u8]| {
    let _ = xml::fields(data);
    // Round trip: `name=value` pairs separated by NUL; names made of letters.
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| {
            let name: String = name.chars().filter(char::is_ascii_alphabetic).collect();
            (format!("F{name}"), value.to_owned())
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let built = xml::build(&borrowed);
    let read = xml::fields(built.as_bytes()).expect("what build writes reads back");
    assert_eq!(read, pairs, "{built}");
});
