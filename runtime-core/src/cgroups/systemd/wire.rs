//! The D-Bus wire format (the marshalling of the D-Bus specification), as much of it as the
//! systemd driver speaks: method calls with basic values, arrays, structs and variants out;
//! method returns, errors and signals in, whose header is parsed in full and whose body is
//! read value by value by the caller, which knows the signature it asked for.

use super::SystemdError;

/// Message types of the header's second byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A method call (we only send these).
    MethodCall = 1,
    /// A method's reply.
    MethodReturn = 2,
    /// A method's error reply.
    Error = 3,
    /// A signal (systemd's JobRemoved, among others we skip).
    Signal = 4,
}

/// Header field codes.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_SIGNATURE: u8 = 8;

/// The largest message accepted: the specification's limit is 128 MiB; systemd's replies
/// to our calls are a few hundred bytes, so anything near the limit is a broken stream.
pub(crate) const MAX_MESSAGE: usize = 16 << 20;

/// A value of the types the driver sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `y`
    Byte(u8),
    /// `b`
    Bool(bool),
    /// `u`
    U32(u32),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `o`
    ObjectPath(String),
    /// `g`
    Signature(String),
    /// `a...`: the element signature, needed when the array is empty, and the elements.
    Array(String, Vec<Value>),
    /// `(...)`
    Struct(Vec<Value>),
    /// `v`
    Variant(Box<Value>),
}

impl Value {
    /// The value's type signature.
    pub(crate) fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::U32(_) => "u".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::ObjectPath(_) => "o".into(),
            Value::Signature(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    /// Appends the value to `buf`, aligned relative to the start of `buf`, which must be
    /// the start of the message or an 8-aligned offset in it (the body).
    pub(crate) fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Byte(b) => buf.push(*b),
            Value::Bool(b) => put_u32(buf, u32::from(*b)),
            Value::U32(v) => put_u32(buf, *v),
            Value::U64(v) => {
                pad(buf, 8);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Str(s) | Value::ObjectPath(s) => {
                put_u32(buf, s.len() as u32);
                buf.extend_from_slice(s.as_bytes());
                buf.push(0);
            }
            Value::Signature(s) => put_signature(buf, s),
            Value::Array(elem, items) => {
                put_u32(buf, 0);
                let len_at = buf.len() - 4;
                // The length counts the elements, not the padding before the first one.
                pad(buf, alignment(elem));
                let start = buf.len();
                for item in items {
                    item.write(buf);
                }
                let len = (buf.len() - start) as u32;
                buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                pad(buf, 8);
                for f in fields {
                    f.write(buf);
                }
            }
            Value::Variant(v) => {
                put_signature(buf, &v.signature());
                v.write(buf);
            }
        }
    }
}

/// The alignment of a type by its signature's first character.
fn alignment(sig: &str) -> usize {
    match sig.as_bytes().first() {
        Some(b'b' | b'u' | b'i' | b's' | b'o' | b'a' | b'h') => 4,
        Some(b't' | b'x' | b'd' | b'(' | b'{') => 8,
        Some(b'n' | b'q') => 2,
        _ => 1,
    }
}

fn pad(buf: &mut Vec<u8>, align: usize) {
    while !buf.len().is_multiple_of(align) {
        buf.push(0);
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    pad(buf, 4);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_signature(buf: &mut Vec<u8>, s: &str) {
    buf.push(s.len() as u8);
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

/// A method call to `member` of `interface` on the object `path`, numbered `serial`.
pub(crate) fn method_call(
    serial: u32,
    path: &str,
    interface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Vec::new();
    for a in args {
        a.write(&mut body);
    }
    let signature: String = args.iter().map(Value::signature).collect();
    let field = |code, v| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
    let mut fields = vec![
        field(FIELD_PATH, Value::ObjectPath(path.into())),
        field(FIELD_INTERFACE, Value::Str(interface.into())),
        field(FIELD_MEMBER, Value::Str(member.into())),
    ];
    if !signature.is_empty() {
        fields.push(field(FIELD_SIGNATURE, Value::Signature(signature)));
    }
    // Little endian, method call, no flags (a reply is wanted), protocol version 1.
    let mut msg = vec![b'l', Kind::MethodCall as u8, 0, 1];
    put_u32(&mut msg, body.len() as u32);
    put_u32(&mut msg, serial);
    Value::Array("(yv)".into(), fields).write(&mut msg);
    pad(&mut msg, 8);
    msg.extend_from_slice(&body);
    msg
}

/// The total length of a message from its first 16 bytes (fixed header and the length of
/// the header fields).
pub(crate) fn frame_len(head: &[u8; 16]) -> Result<usize, SystemdError> {
    let big = endianness(head[0])?;
    let body = read_u32_at(head, 4, big) as usize;
    let fields = read_u32_at(head, 12, big) as usize;
    let total = (16 + fields).next_multiple_of(8) + body;
    if total > MAX_MESSAGE {
        return Err(protocol(format!("a message of {total} bytes")));
    }
    Ok(total)
}

fn endianness(b: u8) -> Result<bool, SystemdError> {
    match b {
        b'l' => Ok(false),
        b'B' => Ok(true),
        other => Err(protocol(format!("endianness byte {other:#x}"))),
    }
}

fn read_u32_at(buf: &[u8], at: usize, big: bool) -> u32 {
    let b = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn protocol(what: String) -> SystemdError {
    SystemdError::Protocol(what)
}

/// A received message: its header fields, and its body for [`Message::body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The message type.
    pub kind: Kind,
    /// INTERFACE, for signals.
    pub interface: Option<String>,
    /// MEMBER, for signals.
    pub member: Option<String>,
    /// ERROR_NAME, for errors.
    pub error_name: Option<String>,
    /// REPLY_SERIAL: the call a reply or error answers.
    pub reply_serial: Option<u32>,
    /// SIGNATURE of the body; empty for none.
    pub signature: String,
    big: bool,
    body: Vec<u8>,
}

impl Message {
    /// Parses one complete message (as long as [`frame_len`] said).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Message, SystemdError> {
        if bytes.len() < 16 {
            return Err(protocol(format!("a message of {} bytes", bytes.len())));
        }
        let big = endianness(bytes[0])?;
        let kind = match bytes[1] {
            1 => Kind::MethodCall,
            2 => Kind::MethodReturn,
            3 => Kind::Error,
            4 => Kind::Signal,
            other => return Err(protocol(format!("message type {other}"))),
        };
        let body_len = read_u32_at(bytes, 4, big) as usize;
        let mut r = Reader::new(&bytes[..bytes.len() - body_len.min(bytes.len())], big);
        r.pos = 12;
        let fields_len = r.u32()? as usize;
        r.align(8)?;
        let end = r.pos + fields_len;
        let mut msg = Message {
            kind,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            signature: String::new(),
            big,
            body: Vec::new(),
        };
        while r.pos < end {
            r.align(8)?;
            let code = r.byte()?;
            let sig = r.signature()?;
            let value = match sig.as_str() {
                "s" | "o" => r.string()?,
                "g" => r.signature()?,
                "u" => r.u32()?.to_string(),
                other => return Err(protocol(format!("header field {code} of type {other:?}"))),
            };
            match code {
                FIELD_INTERFACE => msg.interface = Some(value),
                FIELD_MEMBER => msg.member = Some(value),
                FIELD_ERROR_NAME => msg.error_name = Some(value),
                FIELD_REPLY_SERIAL => {
                    msg.reply_serial = value.parse().ok();
                }
                FIELD_SIGNATURE => msg.signature = value,
                // PATH, DESTINATION, SENDER, UNIX_FDS: not needed.
                _ => {}
            }
        }
        let body_start = end.next_multiple_of(8);
        if body_start + body_len != bytes.len() {
            return Err(protocol(format!(
                "header and body of {} bytes in a message of {}",
                body_start + body_len,
                bytes.len()
            )));
        }
        msg.body = bytes[body_start..].to_vec();
        Ok(msg)
    }

    /// A reader of the body, from its start.
    pub(crate) fn body(&self) -> Reader<'_> {
        Reader::new(&self.body, self.big)
    }
}

/// Reads values from a message or its body, aligned relative to its start.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], big: bool) -> Self {
        Self { buf, pos: 0, big }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SystemdError> {
        let end = self.pos + n;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| protocol(format!("a value past the end, at {}", self.pos)))?;
        self.pos = end;
        Ok(s)
    }

    fn align(&mut self, n: usize) -> Result<(), SystemdError> {
        let to = self.pos.next_multiple_of(n);
        self.take(to - self.pos).map(drop)
    }

    fn byte(&mut self) -> Result<u8, SystemdError> {
        Ok(self.take(1)?[0])
    }

    /// A `u`.
    pub(crate) fn u32(&mut self) -> Result<u32, SystemdError> {
        self.align(4)?;
        let at = self.pos;
        self.take(4)?;
        Ok(read_u32_at(self.buf, at, self.big))
    }

    /// An `s` or an `o`.
    pub(crate) fn string(&mut self) -> Result<String, SystemdError> {
        let len = self.u32()? as usize;
        let s = self.take(len + 1)?;
        String::from_utf8(s[..len].to_vec()).map_err(|_| protocol("a string not in UTF-8".into()))
    }

    /// A `g`.
    fn signature(&mut self) -> Result<String, SystemdError> {
        let len = self.byte()? as usize;
        let s = self.take(len + 1)?;
        String::from_utf8(s[..len].to_vec())
            .map_err(|_| protocol("a signature not in ASCII".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_aligned_and_signed() {
        let v = Value::Struct(vec![
            Value::Str("Slice".into()),
            Value::Variant(Box::new(Value::Str("system.slice".into()))),
        ]);
        assert_eq!(v.signature(), "(sv)");
        let mut buf = vec![1u8]; // an odd start: the struct pads to 8
        v.write(&mut buf);
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0];
        want.extend_from_slice(b"Slice\0");
        // The variant's signature at 18, then padding to 24 for the string.
        want.extend_from_slice(&[1, b's', 0, 0, 0, 0]);
        want.extend_from_slice(&[12, 0, 0, 0]);
        want.extend_from_slice(b"system.slice\0");
        assert_eq!(buf, want);

        // An array's length leaves out the padding before its first element.
        let mut buf = Vec::new();
        Value::Array("t".into(), vec![Value::U64(7)]).write(&mut buf);
        assert_eq!(buf, [8, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        let mut buf = Vec::new();
        Value::Array("(sv)".into(), vec![]).write(&mut buf);
        assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Value::Array("y".into(), vec![Value::Byte(3)]).signature(),
            "ay"
        );
        let mut buf = Vec::new();
        Value::Bool(true).write(&mut buf);
        assert_eq!(buf, [1, 0, 0, 0]);
    }

    /// A method call: fixed header, fields, body 8-aligned, and our parser reads it back.
    #[test]
    fn method_call_layout() {
        let msg = method_call(
            7,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "ResetFailedUnit",
            &[Value::Str("a.scope".into())],
        );
        assert_eq!(&msg[..4], &[b'l', 1, 0, 1]);
        let body_len = u32::from_le_bytes(msg[4..8].try_into().expect("4 bytes"));
        assert_eq!(body_len, 4 + 7 + 1);
        assert_eq!(u32::from_le_bytes(msg[8..12].try_into().expect("4")), 7);
        let head: [u8; 16] = msg[..16].try_into().expect("16 bytes");
        assert_eq!(frame_len(&head).expect("len"), msg.len());
        // The body starts 8-aligned.
        assert_eq!((msg.len() - body_len as usize) % 8, 0);
        assert!(msg.ends_with(b"\x07\0\0\0a.scope\0"));
        // Our own parser reads it back.
        let parsed = Message::parse(&msg).expect("parse");
        assert_eq!(parsed.kind, Kind::MethodCall);
        assert_eq!(
            parsed.interface.as_deref(),
            Some("org.freedesktop.systemd1.Manager")
        );
        assert_eq!(parsed.member.as_deref(), Some("ResetFailedUnit"));
        assert_eq!(parsed.signature, "s");
        assert_eq!(parsed.body().string().expect("arg"), "a.scope");
    }

    /// A JobRemoved signal laid out by hand as the specification says (header fields
    /// INTERFACE, MEMBER, SIGNATURE; body `uoss`), in little and in big endian.
    #[test]
    fn parses_signals_and_replies() {
        fn signal(big: bool) -> Vec<u8> {
            let u32b = |v: u32| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut fields = Vec::new();
            let mut field = |code: u8, sig: &str, val: &[u8]| {
                while fields.len() % 8 != 0 {
                    fields.push(0);
                }
                fields.push(code);
                fields.push(sig.len() as u8);
                fields.extend_from_slice(sig.as_bytes());
                fields.push(0);
                while (16 + fields.len()) % 4 != 0 {
                    fields.push(0);
                }
                fields.extend_from_slice(val);
            };
            let s = |t: &str| {
                let mut v = u32b(t.len() as u32).to_vec();
                v.extend_from_slice(t.as_bytes());
                v.push(0);
                v
            };
            field(2, "s", &s("org.freedesktop.systemd1.Manager"));
            field(3, "s", &s("JobRemoved"));
            field(8, "g", b"\x04uoss\0");
            let mut body = u32b(42).to_vec();
            body.extend(s("/org/freedesktop/systemd1/job/42"));
            while body.len() % 4 != 0 {
                body.push(0);
            }
            body.extend(s("youki-x.scope"));
            while body.len() % 4 != 0 {
                body.push(0);
            }
            body.extend(s("done"));
            let mut msg = vec![if big { b'B' } else { b'l' }, 4, 1, 1];
            msg.extend_from_slice(&u32b(body.len() as u32));
            msg.extend_from_slice(&u32b(9));
            msg.extend_from_slice(&u32b(fields.len() as u32));
            msg.extend_from_slice(&fields);
            while msg.len() % 8 != 0 {
                msg.push(0);
            }
            msg.extend_from_slice(&body);
            msg
        }
        for big in [false, true] {
            let bytes = signal(big);
            let head: [u8; 16] = bytes[..16].try_into().expect("16");
            assert_eq!(frame_len(&head).expect("len"), bytes.len());
            let m = Message::parse(&bytes).expect("parse");
            assert_eq!(m.kind, Kind::Signal);
            assert_eq!(m.member.as_deref(), Some("JobRemoved"));
            assert_eq!(m.signature, "uoss");
            let mut b = m.body();
            assert_eq!(b.u32().expect("id"), 42);
            assert_eq!(b.string().expect("job"), "/org/freedesktop/systemd1/job/42");
            assert_eq!(b.string().expect("unit"), "youki-x.scope");
            assert_eq!(b.string().expect("result"), "done");
            assert!(b.string().is_err(), "past the end");
        }
    }

    #[test]
    fn refuses_garbage() {
        let mut head = [0u8; 16];
        head[0] = b'x';
        assert!(frame_len(&head).is_err());
        head[0] = b'l';
        head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(frame_len(&head).is_err(), "too large");
        let msg = method_call(1, "/", "i.f", "M", &[]);
        assert!(Message::parse(&msg[..msg.len() - 1]).is_err(), "truncated");
        let mut bad = msg.clone();
        bad[1] = 9;
        assert!(Message::parse(&bad).is_err(), "unknown type");
    }
}
