use super::*;

fn point() -> Type {
    Type::structure("Point", &[("X", Type::Int), ("Y", Type::Int)])
}

fn decode_all(bytes: &[u8]) -> Vec<Value> {
    let mut dec = Decoder::new(bytes);
    let mut out = Vec::new();
    while let Ok(v) = dec.decode() {
        out.push(v);
    }
    out
}

#[test]
fn the_point_example_of_gobs_documentation_byte_for_byte() {
    let expected: Vec<u8> = [
        "1f ff 81 03 01 01 05 50 6f 69 6e 74 01 ff 82 00",
        "01 02 01 01 58 01 04 00 01 01 59 01 04 00 00 00",
        "07 ff 82 01 2c 01 42 00",
    ]
    .join(" ")
    .split(' ')
    .map(|h| u8::from_str_radix(h, 16).unwrap())
    .collect();
    let value = Value::Struct(vec![
        ("X".into(), Value::Int(22)),
        ("Y".into(), Value::Int(33)),
    ]);
    let mut enc = Encoder::new();
    assert_eq!(enc.encode(&point(), &value).unwrap(), expected);
    assert_eq!(decode_all(&expected), vec![value]);
}

#[test]
fn integers_as_the_documentation_gives_them() {
    let mut out = Vec::new();
    for x in [0u64, 7, 256] {
        put_uint(&mut out, x);
    }
    assert_eq!(out, [0x00, 0x07, 0xfe, 0x01, 0x00]);
    for i in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
        let mut b = Vec::new();
        put_int(&mut b, i);
        let mut c = Cursor { data: &b, pos: 0 };
        assert_eq!(c.int().unwrap(), i);
        assert_eq!(c.pos, b.len());
    }
    let mut b = Vec::new();
    put_uint(&mut b, u64::MAX);
    assert_eq!(b, [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn a_type_is_defined_once_per_stream() {
    let mut enc = Encoder::new();
    let v = Value::Struct(vec![("X".into(), Value::Int(1))]);
    let first = enc.encode(&point(), &v).unwrap();
    let second = enc.encode(&point(), &v).unwrap();
    assert!(first.len() > second.len());
    assert_eq!(second, [0x05, 0xff, 0x82, 0x01, 0x02, 0x00]);
    let mut both = first;
    both.extend(second);
    assert_eq!(decode_all(&both).len(), 2);
}

#[test]
fn every_kind_round_trips() {
    let flag = Type::structure(
        "StringSliceFlag",
        &[
            ("Name", Type::String),
            ("Usage", Type::String),
            ("EnvVar", Type::String),
            ("Value", Type::Slice(Box::new(Type::String))),
        ],
    );
    let all = Type::structure(
        "All",
        &[
            ("B", Type::Bool),
            ("I", Type::Int),
            ("U", Type::Uint),
            ("F", Type::Float),
            ("Raw", Type::Bytes),
            ("S", Type::String),
            (
                "M",
                Type::Map(Box::new(Type::String), Box::new(Type::Interface)),
            ),
            ("L", Type::Slice(Box::new(Type::Interface))),
        ],
    );
    let flag_value = Value::Struct(vec![
        ("Name".into(), Value::String("tags".into())),
        (
            "Value".into(),
            Value::Slice(vec![Value::String("a".into())]),
        ),
    ]);
    let value = Value::Struct(vec![
        ("B".into(), Value::Bool(true)),
        ("I".into(), Value::Int(-42)),
        ("U".into(), Value::Uint(1 << 33)),
        ("F".into(), Value::Float(1.5)),
        ("Raw".into(), Value::Bytes(b"{\"x\":1}".to_vec())),
        ("S".into(), Value::String("héllo".into())),
        (
            "M".into(),
            Value::Map(vec![
                (
                    Value::String("n".into()),
                    Value::interface("int", Type::Int, Value::Int(3)),
                ),
                (
                    Value::String("l".into()),
                    Value::interface(
                        "[]string",
                        Type::Slice(Box::new(Type::String)),
                        Value::Slice(vec![
                            Value::String("x".into()),
                            Value::String(String::new()),
                        ]),
                    ),
                ),
            ]),
        ),
        (
            "L".into(),
            Value::Slice(vec![
                Value::interface("*mcnflag.StringSliceFlag", flag.clone(), flag_value.clone()),
                Value::Interface(None),
            ]),
        ),
    ]);
    let bytes = Encoder::new().encode(&all, &value).unwrap();
    let decoded = decode_all(&bytes);
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    for name in ["B", "I", "U", "F", "Raw", "S"] {
        assert_eq!(d.field(name), value.field(name), "{name}");
    }
    let Some(Value::Slice(list)) = d.field("L") else {
        panic!("{d:?}")
    };
    let Value::Interface(Some(c)) = &list[0] else {
        panic!()
    };
    assert_eq!(c.name, "*mcnflag.StringSliceFlag");
    assert_eq!(c.value, flag_value);
    assert_eq!(list[1], Value::Interface(None));
    let Some(Value::Map(pairs)) = d.field("M") else {
        panic!()
    };
    assert_eq!(pairs.len(), 2);
}

#[test]
fn zero_fields_are_left_out_and_nested_structs_are_not() {
    let inner = Type::structure("In", &[("A", Type::Int)]);
    let outer = Type::structure("Out", &[("S", Type::String), ("In", inner)]);
    let v = Value::Struct(vec![
        ("S".into(), Value::String(String::new())),
        ("In".into(), Value::Struct(vec![])),
    ]);
    let bytes = Encoder::new().encode(&outer, &v).unwrap();
    let d = decode_all(&bytes);
    assert_eq!(
        d,
        vec![Value::Struct(vec![("In".into(), Value::Struct(vec![]))])]
    );
}

#[test]
fn hostile_input_is_an_error_not_a_panic_or_an_allocation() {
    // A count far beyond the message.
    let mut msg = Vec::new();
    put_int(&mut msg, BYTES);
    put_uint(&mut msg, 0);
    put_uint(&mut msg, u64::MAX / 2);
    let mut stream = Vec::new();
    put_bytes(&mut stream, &msg);
    assert!(Decoder::new(&stream[..]).decode().is_err());
    // A message length beyond the cap.
    let mut huge = Vec::new();
    put_uint(&mut huge, 1 << 40);
    assert!(Decoder::new(&huge[..]).decode().is_err());
    // An undefined type, a redefined builtin, a truncated stream.
    for id in [99i64, -3] {
        let mut msg = Vec::new();
        put_int(&mut msg, id);
        put_uint(&mut msg, 0);
        let mut stream = Vec::new();
        put_bytes(&mut stream, &msg);
        assert!(Decoder::new(&stream[..]).decode().is_err(), "{id}");
    }
    assert!(Decoder::new(&[0x05u8, 0x0c][..]).decode().is_err());
    // Every prefix of a valid stream fails cleanly.
    let v = Value::Struct(vec![("X".into(), Value::Int(22))]);
    let bytes = Encoder::new().encode(&point(), &v).unwrap();
    for n in 0..bytes.len() {
        assert!(Decoder::new(&bytes[..n]).decode().is_err(), "prefix {n}");
    }
}

#[test]
fn a_type_mismatch_is_an_encoding_error() {
    assert!(
        Encoder::new()
            .encode(&Type::Int, &Value::String("x".into()))
            .is_err()
    );
}
