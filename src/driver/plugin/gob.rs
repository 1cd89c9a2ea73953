//! Go's `encoding/gob`, as far as docker-machine's plugin protocol needs it: every wire type
//! (bool, int, uint, float, bytes, string, slices, arrays, maps, structs, interfaces), type
//! definitions in both directions, and interface values carrying registered names such as
//! `*mcnflag.StringFlag` or `*rpcdriver.RPCFlags`.
//!
//! A stream is a sequence of messages `[uint length][int type id][...]`; a negative id defines a
//! type, a positive one introduces a value. Values decode into [`Value`], whatever type the Go
//! side defined; the encoder sends the definitions of the [`Type`]s it uses once per stream.

use std::collections::HashMap;
use std::io::{self, Read};

/// A gob type id.
pub type TypeId = i64;

const BOOL: TypeId = 1;
const INT: TypeId = 2;
const UINT: TypeId = 3;
const FLOAT: TypeId = 4;
const BYTES: TypeId = 5;
const STRING: TypeId = 6;
const COMPLEX: TypeId = 7;
const INTERFACE: TypeId = 8;
/// The first id this encoder gives to a type of its own (as Go's encoder does in practice).
const FIRST_USER_ID: TypeId = 65;

/// The largest message accepted (the plugin protocol's are a few KiB).
const MAX_MESSAGE: u64 = 64 << 20;
/// How deeply values may nest.
const MAX_DEPTH: usize = 64;

/// What can go wrong reading or writing a gob stream.
#[derive(Debug, thiserror::Error)]
pub enum GobError {
    #[error("gob: {0}")]
    Io(#[from] io::Error),
    #[error("gob: {0}")]
    Malformed(String),
}

fn malformed<T>(what: impl Into<String>) -> Result<T, GobError> {
    Err(GobError::Malformed(what.into()))
}

/// A type the encoder can send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Interface,
    Slice(Box<Type>),
    Map(Box<Type>, Box<Type>),
    /// A struct: its Go name (informational) and its exported fields in order.
    Struct(String, Vec<(String, Type)>),
}

impl Type {
    /// A struct type.
    pub fn structure(name: &str, fields: &[(&str, Type)]) -> Type {
        Type::Struct(
            name.to_string(),
            fields
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        )
    }

    fn builtin_id(&self) -> Option<TypeId> {
        Some(match self {
            Type::Bool => BOOL,
            Type::Int => INT,
            Type::Uint => UINT,
            Type::Float => FLOAT,
            Type::Bytes => BYTES,
            Type::String => STRING,
            Type::Interface => INTERFACE,
            _ => return None,
        })
    }
}

/// A value read from or written to a gob stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    /// A slice or an array.
    Slice(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A struct's fields by name; decoded structs list only the fields that were sent
    /// (gob leaves out zero values).
    Struct(Vec<(String, Value)>),
    /// An interface: nil, or a concrete value with its registered name and type.
    Interface(Option<Box<Concrete>>),
}

/// The value inside an interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Concrete {
    /// The name the type is registered under (`*mcnflag.StringFlag`, `string`, `[]string`).
    pub name: String,
    pub ty: Type,
    pub value: Value,
}

impl Value {
    /// An interface value holding `value` of type `ty`, registered as `name`.
    pub fn interface(name: &str, ty: Type, value: Value) -> Value {
        Value::Interface(Some(Box::new(Concrete {
            name: name.to_string(),
            ty,
            value,
        })))
    }

    /// A struct field by name (`None` when it was not sent, i.e. it is zero).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as a string (`""` for anything else, as a zero field).
    pub fn as_str(&self) -> &str {
        match self {
            Value::String(s) => s,
            _ => "",
        }
    }

    /// The value as a signed integer (unsigned ones that fit, too).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::Float(f) => *f == 0.0,
            Value::Bytes(b) => b.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::Slice(v) => v.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Interface(i) => i.is_none(),
            // Go always sends nested structs.
            Value::Struct(_) => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Primitive encodings.

fn put_uint(out: &mut Vec<u8>, x: u64) {
    if x < 0x80 {
        out.push(x as u8);
        return;
    }
    let bytes = x.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let len = bytes.len() - skip;
    out.push((len as u8).wrapping_neg());
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 {
        (!(i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    };
    put_uint(out, u);
}

fn put_bytes(out: &mut Vec<u8>, data: &[u8]) {
    put_uint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn float_bits(f: f64) -> u64 {
    f.to_bits().swap_bytes()
}

/// A cursor over one or more messages' bytes.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, GobError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| GobError::Malformed("unexpected end of message".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let len = usize::from(first.wrapping_neg());
        if len > 8 {
            return malformed(format!("uint of {len} bytes"));
        }
        let mut x = 0u64;
        for _ in 0..len {
            x = (x << 8) | u64::from(self.byte()?);
        }
        Ok(x)
    }

    fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !(u >> 1) as i64
        } else {
            (u >> 1) as i64
        })
    }

    fn bytes(&mut self) -> Result<Vec<u8>, GobError> {
        let len = self.count()?;
        let out = self.data[self.pos..self.pos + len].to_vec();
        self.pos += len;
        Ok(out)
    }

    /// A length or element count, which can never exceed the bytes left.
    fn count(&mut self) -> Result<usize, GobError> {
        let n = self.uint()?;
        if n > self.remaining() as u64 {
            return malformed(format!(
                "count {n} exceeds the {} bytes left",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types: how types are described on the stream.

/// A type as the other side defined it.
#[derive(Debug, Clone)]
enum Wire {
    Array {
        elem: TypeId,
        len: i64,
    },
    Slice {
        elem: TypeId,
    },
    Struct {
        fields: Vec<(String, TypeId)>,
    },
    Map {
        key: TypeId,
        elem: TypeId,
    },
    /// GobEncoder, BinaryMarshaler, TextMarshaler: opaque bytes.
    Opaque,
}

/// The kinds of field in the structs that describe types (`arrayType`, `sliceType`,
/// `structType`, `mapType`, `gobEncoderType`).
#[derive(Clone, Copy)]
enum DefField {
    /// `CommonType {Name string; Id int}`.
    Common,
    /// A type id or a length.
    Int,
    /// `structType.Field`: `[]fieldType {Name string; Id int}`.
    Fields,
}

/// One parsed field of a type-description struct.
enum DefValue {
    Int(i64),
    Fields(Vec<(String, TypeId)>),
    Common,
}

/// Reads a `{Name string; Id int}` struct (CommonType and fieldType have that shape).
fn read_name_and_id(c: &mut Cursor) -> Result<(String, TypeId), GobError> {
    let (mut name, mut id, mut field) = (String::new(), 0, -1i64);
    loop {
        let delta = c.uint()?;
        if delta == 0 {
            return Ok((name, id));
        }
        field += delta as i64;
        match field {
            0 => name = String::from_utf8_lossy(&c.bytes()?).into_owned(),
            1 => id = c.int()?,
            _ => return malformed("unexpected field in a type name"),
        }
    }
}

/// Reads a type-description struct whose fields are `schema`.
fn read_def(c: &mut Cursor, schema: &[DefField]) -> Result<Vec<(usize, DefValue)>, GobError> {
    let mut out = Vec::new();
    let mut field = -1i64;
    loop {
        let delta = c.uint()?;
        if delta == 0 {
            return Ok(out);
        }
        field += delta as i64;
        let index = usize::try_from(field).unwrap_or(usize::MAX);
        let value = match schema.get(index) {
            Some(DefField::Common) => {
                read_name_and_id(c)?;
                DefValue::Common
            }
            Some(DefField::Int) => DefValue::Int(c.int()?),
            Some(DefField::Fields) => {
                let n = c.count()?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    fields.push(read_name_and_id(c)?);
                }
                DefValue::Fields(fields)
            }
            None => return malformed(format!("unexpected field {field} in a type definition")),
        };
        out.push((index, value));
    }
}

/// Reads a `wireType` struct: ArrayT, SliceT, StructT, MapT, then three marshaler kinds.
fn read_wire(c: &mut Cursor) -> Result<Wire, GobError> {
    use DefField::{Common, Fields, Int};
    let int = |def: &[(usize, DefValue)], i: usize| {
        def.iter()
            .find_map(|(n, v)| match v {
                DefValue::Int(x) if *n == i => Some(*x),
                _ => None,
            })
            .unwrap_or(0)
    };
    let mut wire = None;
    let mut field = -1i64;
    loop {
        let delta = c.uint()?;
        if delta == 0 {
            break;
        }
        field += delta as i64;
        wire = Some(match field {
            0 => {
                let d = read_def(c, &[Common, Int, Int])?;
                Wire::Array {
                    elem: int(&d, 1),
                    len: int(&d, 2),
                }
            }
            1 => {
                let d = read_def(c, &[Common, Int])?;
                Wire::Slice { elem: int(&d, 1) }
            }
            2 => {
                let d = read_def(c, &[Common, Fields])?;
                let fields = d
                    .into_iter()
                    .find_map(|(_, v)| match v {
                        DefValue::Fields(f) => Some(f),
                        _ => None,
                    })
                    .unwrap_or_default();
                Wire::Struct { fields }
            }
            3 => {
                let d = read_def(c, &[Common, Int, Int])?;
                Wire::Map {
                    key: int(&d, 1),
                    elem: int(&d, 2),
                }
            }
            4..=6 => {
                read_def(c, &[Common])?;
                Wire::Opaque
            }
            other => return malformed(format!("unknown wireType field {other}")),
        });
    }
    wire.ok_or_else(|| GobError::Malformed("empty type definition".into()))
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/// Reads gob messages from a stream and decodes the values in them.
pub struct Decoder<R> {
    reader: R,
    types: HashMap<TypeId, Wire>,
}

/// One message's bytes, and the decoder's view of the stream for the messages after it.
struct Frame<'a, R> {
    dec: &'a mut Decoder<R>,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Decoder<R> {
    /// A decoder over `reader`.
    pub fn new(reader: R) -> Decoder<R> {
        Decoder {
            reader,
            types: HashMap::new(),
        }
    }

    fn read_message(&mut self) -> Result<Vec<u8>, GobError> {
        let mut first = [0u8; 1];
        self.reader.read_exact(&mut first)?;
        let len = if first[0] < 0x80 {
            u64::from(first[0])
        } else {
            let n = usize::from(first[0].wrapping_neg());
            if n > 8 {
                return malformed(format!("message length of {n} bytes"));
            }
            let mut b = [0u8; 8];
            self.reader.read_exact(&mut b[8 - n..])?;
            u64::from_be_bytes(b)
        };
        if len > MAX_MESSAGE {
            return malformed(format!("message of {len} bytes"));
        }
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads the next value, after any type definitions before it.
    pub fn decode(&mut self) -> Result<Value, GobError> {
        let mut frame = Frame {
            buf: Vec::new(),
            pos: 0,
            dec: self,
        };
        let id = frame.type_sequence(false)?;
        let value = frame.top_value(id, 0)?;
        if frame.pos != frame.buf.len() {
            return malformed("extra data after a value");
        }
        Ok(value)
    }
}

impl<R: Read> Frame<'_, R> {
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Cursor) -> Result<T, GobError>,
    ) -> Result<T, GobError> {
        let mut c = Cursor {
            data: &self.buf,
            pos: self.pos,
        };
        let out = f(&mut c)?;
        self.pos = c.pos;
        Ok(out)
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        self.with(|c| c.uint())
    }

    fn int(&mut self) -> Result<i64, GobError> {
        self.with(|c| c.int())
    }

    /// Type definitions, then the id of the value that follows (Go's `decodeTypeSequence`).
    /// Inside an interface the definitions may continue in the following messages.
    fn type_sequence(&mut self, in_interface: bool) -> Result<TypeId, GobError> {
        loop {
            if self.pos == self.buf.len() {
                self.buf = self.dec.read_message()?;
                self.pos = 0;
            }
            let id = self.int()?;
            if id >= 0 {
                return Ok(id);
            }
            let def = -id;
            if def <= INTERFACE {
                return malformed(format!("redefinition of builtin type {def}"));
            }
            let wire = self.with(read_wire)?;
            self.dec.types.insert(def, wire);
            if self.pos < self.buf.len() {
                if !in_interface {
                    return malformed("extra data after a type definition");
                }
                self.uint()?;
            }
        }
    }

    fn is_struct(&self, id: TypeId) -> bool {
        matches!(self.dec.types.get(&id), Some(Wire::Struct { .. }))
    }

    fn top_value(&mut self, id: TypeId, depth: usize) -> Result<Value, GobError> {
        if self.is_struct(id) {
            return self.value(id, depth);
        }
        // A value that is not a struct is sent as a struct of one field: delta 0.
        if self.uint()? != 0 {
            return malformed("singleton value without its zero field number");
        }
        self.value(id, depth)
    }

    fn value(&mut self, id: TypeId, depth: usize) -> Result<Value, GobError> {
        if depth > MAX_DEPTH {
            return malformed("values nested too deeply");
        }
        Ok(match id {
            BOOL => Value::Bool(self.uint()? != 0),
            INT => Value::Int(self.int()?),
            UINT => Value::Uint(self.uint()?),
            FLOAT => Value::Float(f64::from_bits(self.uint()?.swap_bytes())),
            BYTES => Value::Bytes(self.with(|c| c.bytes())?),
            STRING => Value::String(
                String::from_utf8(self.with(|c| c.bytes())?)
                    .map_err(|_| GobError::Malformed("string is not UTF-8".into()))?,
            ),
            COMPLEX => Value::Slice(vec![
                Value::Float(f64::from_bits(self.uint()?.swap_bytes())),
                Value::Float(f64::from_bits(self.uint()?.swap_bytes())),
            ]),
            INTERFACE => self.interface(depth)?,
            _ => {
                let wire = self
                    .dec
                    .types
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| GobError::Malformed(format!("undefined type id {id}")))?;
                match wire {
                    Wire::Slice { elem } | Wire::Array { elem, .. } => {
                        let n = self.with(|c| c.count())?;
                        if let Wire::Array { len, .. } = wire
                            && n as i64 != len
                        {
                            return malformed(format!("array of {n} elements, expected {len}"));
                        }
                        let mut items = Vec::with_capacity(n);
                        for _ in 0..n {
                            items.push(self.value(elem, depth + 1)?);
                        }
                        Value::Slice(items)
                    }
                    Wire::Map { key, elem } => {
                        let n = self.with(|c| c.count())?;
                        let mut pairs = Vec::with_capacity(n);
                        for _ in 0..n {
                            let k = self.value(key, depth + 1)?;
                            let v = self.value(elem, depth + 1)?;
                            pairs.push((k, v));
                        }
                        Value::Map(pairs)
                    }
                    Wire::Struct { fields } => {
                        let mut out = Vec::new();
                        let mut field = -1i64;
                        loop {
                            let delta = self.uint()?;
                            if delta == 0 {
                                break;
                            }
                            field = field.saturating_add(delta.min(i64::MAX as u64) as i64);
                            let (name, fid) = usize::try_from(field)
                                .ok()
                                .and_then(|i| fields.get(i))
                                .cloned()
                                .ok_or_else(|| {
                                    GobError::Malformed(format!("field {field} out of range"))
                                })?;
                            out.push((name, self.value(fid, depth + 1)?));
                        }
                        Value::Struct(out)
                    }
                    Wire::Opaque => Value::Bytes(self.with(|c| c.bytes())?),
                }
            }
        })
    }

    fn interface(&mut self, depth: usize) -> Result<Value, GobError> {
        let name = self.with(|c| c.bytes())?;
        if name.is_empty() {
            return Ok(Value::Interface(None));
        }
        let name = String::from_utf8(name)
            .map_err(|_| GobError::Malformed("interface type name is not UTF-8".into()))?;
        let id = self.type_sequence(true)?;
        let len = self.with(|c| c.count())?;
        let end = self.pos + len;
        let value = self.top_value(id, depth + 1)?;
        if self.pos != end {
            return malformed(format!("interface value of {name} has the wrong length"));
        }
        let ty = self.type_of(id, 0)?;
        Ok(Value::interface(&name, ty, value))
    }

    /// The [`Type`] of a defined id (so that a decoded interface value can be sent back).
    fn type_of(&self, id: TypeId, depth: usize) -> Result<Type, GobError> {
        if depth > MAX_DEPTH {
            return malformed("recursive type");
        }
        Ok(match id {
            BOOL => Type::Bool,
            INT => Type::Int,
            UINT => Type::Uint,
            FLOAT => Type::Float,
            BYTES => Type::Bytes,
            STRING => Type::String,
            INTERFACE => Type::Interface,
            _ => match self.dec.types.get(&id) {
                Some(Wire::Slice { elem }) | Some(Wire::Array { elem, .. }) => {
                    Type::Slice(Box::new(self.type_of(*elem, depth + 1)?))
                }
                Some(Wire::Map { key, elem }) => Type::Map(
                    Box::new(self.type_of(*key, depth + 1)?),
                    Box::new(self.type_of(*elem, depth + 1)?),
                ),
                Some(Wire::Struct { fields }) => Type::Struct(
                    String::new(),
                    fields
                        .iter()
                        .map(|(n, f)| Ok((n.clone(), self.type_of(*f, depth + 1)?)))
                        .collect::<Result<_, GobError>>()?,
                ),
                Some(Wire::Opaque) => Type::Bytes,
                None => return malformed(format!("undefined type id {id}")),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// Writes values as gob messages, sending each type's definition once per stream.
#[derive(Debug, Default)]
pub struct Encoder {
    sent: HashMap<Type, TypeId>,
    next_id: TypeId,
}

impl Encoder {
    /// A new stream's encoder.
    pub fn new() -> Encoder {
        Encoder {
            sent: HashMap::new(),
            next_id: FIRST_USER_ID,
        }
    }

    /// Encodes `value` of type `ty` as one message, preceded by the definitions of the types it
    /// uses that this stream has not sent yet.
    pub fn encode(&mut self, ty: &Type, value: &Value) -> Result<Vec<u8>, GobError> {
        let mut out = Vec::new();
        self.define(ty, &mut out);
        self.define_interfaces(value, &mut out, 0)?;
        let id = self.id_of(ty);
        let mut body = Vec::new();
        put_int(&mut body, id);
        if !matches!(ty, Type::Struct(..)) {
            put_uint(&mut body, 0);
        }
        self.value(ty, value, &mut body)?;
        put_bytes(&mut out, &body);
        Ok(out)
    }

    fn id_of(&self, ty: &Type) -> TypeId {
        ty.builtin_id()
            .or_else(|| self.sent.get(ty).copied())
            .unwrap_or(0)
    }

    /// Sends the definition of `ty` and of the types inside it, inner ones first.
    fn define(&mut self, ty: &Type, out: &mut Vec<u8>) {
        if ty.builtin_id().is_some() || self.sent.contains_key(ty) {
            return;
        }
        match ty {
            Type::Slice(elem) => self.define(elem, out),
            Type::Map(k, v) => {
                self.define(k, out);
                self.define(v, out);
            }
            Type::Struct(_, fields) => {
                for (_, f) in fields {
                    self.define(f, out);
                }
            }
            _ => {}
        }
        let id = self.next_id;
        self.next_id += 1;
        self.sent.insert(ty.clone(), id);
        let mut def = Vec::new();
        put_int(&mut def, -id);
        let common = |def: &mut Vec<u8>, name: &str| {
            // CommonType {Name, Id} as field 0 of the kind's struct.
            put_uint(def, 1);
            if !name.is_empty() {
                put_uint(def, 1);
                put_bytes(def, name.as_bytes());
                put_uint(def, 1);
            } else {
                put_uint(def, 2);
            }
            put_int(def, id);
            put_uint(def, 0);
        };
        match ty {
            Type::Slice(elem) => {
                put_uint(&mut def, 2); // wireType.SliceT
                common(&mut def, "");
                put_uint(&mut def, 1);
                put_int(&mut def, self.id_of(elem));
                put_uint(&mut def, 0);
            }
            Type::Map(k, v) => {
                put_uint(&mut def, 4); // wireType.MapT
                common(&mut def, "");
                put_uint(&mut def, 1);
                put_int(&mut def, self.id_of(k));
                put_uint(&mut def, 1);
                put_int(&mut def, self.id_of(v));
                put_uint(&mut def, 0);
            }
            Type::Struct(name, fields) => {
                put_uint(&mut def, 3); // wireType.StructT
                common(&mut def, name);
                if !fields.is_empty() {
                    put_uint(&mut def, 1);
                    put_uint(&mut def, fields.len() as u64);
                    for (fname, fty) in fields {
                        put_uint(&mut def, 1);
                        put_bytes(&mut def, fname.as_bytes());
                        put_uint(&mut def, 1);
                        put_int(&mut def, self.id_of(fty));
                        put_uint(&mut def, 0);
                    }
                }
                put_uint(&mut def, 0);
            }
            _ => unreachable!("builtin types are never defined"),
        }
        put_uint(&mut def, 0); // end of wireType
        put_bytes(out, &def);
    }

    /// Defines the concrete types of the interface values inside `value`.
    fn define_interfaces(
        &mut self,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), GobError> {
        if depth > MAX_DEPTH {
            return malformed("values nested too deeply");
        }
        match value {
            Value::Interface(Some(c)) => {
                self.define(&c.ty, out);
                self.define_interfaces(&c.value, out, depth + 1)?;
            }
            Value::Slice(items) => {
                for v in items {
                    self.define_interfaces(v, out, depth + 1)?;
                }
            }
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    self.define_interfaces(k, out, depth + 1)?;
                    self.define_interfaces(v, out, depth + 1)?;
                }
            }
            Value::Struct(fields) => {
                for (_, v) in fields {
                    self.define_interfaces(v, out, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn value(&self, ty: &Type, value: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
        match (ty, value) {
            (Type::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
            (Type::Int, Value::Int(i)) => put_int(out, *i),
            (Type::Uint, Value::Uint(u)) => put_uint(out, *u),
            (Type::Float, Value::Float(f)) => put_uint(out, float_bits(*f)),
            (Type::Bytes, Value::Bytes(b)) => put_bytes(out, b),
            (Type::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
            (Type::Slice(elem), Value::Slice(items)) => {
                put_uint(out, items.len() as u64);
                for v in items {
                    self.value(elem, v, out)?;
                }
            }
            (Type::Map(k, v), Value::Map(pairs)) => {
                put_uint(out, pairs.len() as u64);
                for (key, val) in pairs {
                    self.value(k, key, out)?;
                    self.value(v, val, out)?;
                }
            }
            (Type::Struct(_, fields), Value::Struct(values)) => {
                let mut last = -1i64;
                for (i, (fname, fty)) in fields.iter().enumerate() {
                    let Some((_, v)) = values.iter().find(|(n, _)| n == fname) else {
                        continue;
                    };
                    if v.is_zero() {
                        continue;
                    }
                    put_uint(out, (i as i64 - last) as u64);
                    last = i as i64;
                    self.value(fty, v, out)?;
                }
                put_uint(out, 0);
            }
            (Type::Interface, Value::Interface(None)) => put_uint(out, 0),
            (Type::Interface, Value::Interface(Some(c))) => {
                put_bytes(out, c.name.as_bytes());
                put_int(out, self.id_of(&c.ty));
                let mut inner = Vec::new();
                if !matches!(c.ty, Type::Struct(..)) {
                    put_uint(&mut inner, 0);
                }
                self.value(&c.ty, &c.value, &mut inner)?;
                put_bytes(out, &inner);
            }
            (ty, value) => {
                return malformed(format!("cannot encode {value:?} as {ty:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
