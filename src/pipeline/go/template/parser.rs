//! The template parser: tokens into a tree of text, actions and control structures, with
//! the checks Go's parser makes at parse time (undefined variables, `break` outside `range`,
//! unknown functions, non-executable pipeline stages).
//!
//! Owns the tree the executor walks and the nesting bound that keeps a pathological template
//! an error rather than a stack overflow. It must not evaluate anything.

use std::borrow::Cow;
use std::fmt;

use super::funcs::Func;
use super::lexer::{Tok, lex};
use super::strconv::parse_go_int;
use super::{ParseError, Value};

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Branch {
    pub(super) pipe: Pipeline,
    pub(super) body: Vec<Node>,
    pub(super) otherwise: Vec<Node>,
}

#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug)]
pub(super) struct Command {
    pub(super) args: Vec<Operand>,
}

#[derive(Debug)]
pub(super) enum Operand {
    Dot,
    Nil,
    Literal(Value<'static>),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(Func),
    Pipe(Box<Pipeline>, Vec<String>),
    Chain(Func, Vec<String>),
}

enum ListEnd {
    Eof,
    End,
    Else,
}

#[derive(Clone, Copy, PartialEq)]
enum Control {
    If,
    With,
    Range,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// Variables in scope, for Go's parse-time "undefined variable" check.
    vars: Vec<String>,
    range_depth: usize,
    /// Open controls and parentheses, bounded so a pathological template is an error rather
    /// than a stack overflow.
    nesting: usize,
}

/// Parses a whole template into its tree.
pub(super) fn parse(text: &str) -> Result<Vec<Node>, ParseError> {
    let toks = lex(text)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
    };
    let (root, end) = parser.parse_list()?;
    match end {
        ListEnd::Eof => Ok(root),
        ListEnd::End => Err(parser.error("unexpected {{end}}")),
        ListEnd::Else => Err(parser.error("unexpected {{else}}")),
    }
}

/// Deepest nesting of controls and parentheses a template may have.
const MAX_NESTING: usize = 100;

impl Parser {
    fn error(&self, msg: impl fmt::Display) -> ParseError {
        let line = self
            .toks
            .get(self.pos.min(self.toks.len().saturating_sub(1)))
            .map_or(1, |t| t.1);
        ParseError(format!("line {line}: {msg}"))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(format!(
                "template nests more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.pos += 1;
        }
    }

    fn expect_close(&mut self, context: &str) -> Result<(), ParseError> {
        self.skip_space();
        match self.next() {
            Some(Tok::Close) => Ok(()),
            Some(t) => Err(self.error(format!("unexpected {t} in {context}"))),
            None => Err(self.error(format!("unclosed {context}"))),
        }
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, ListEnd), ParseError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, ListEnd::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    self.skip_space();
                    let keyword = match self.peek() {
                        Some(Tok::Ident(k)) => k.clone(),
                        _ => String::new(),
                    };
                    match keyword.as_str() {
                        "end" => {
                            self.pos += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, ListEnd::End));
                        }
                        "else" => {
                            self.pos += 1;
                            return Ok((nodes, ListEnd::Else));
                        }
                        "if" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::If)?);
                        }
                        "with" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::With)?);
                        }
                        "range" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::Range)?);
                        }
                        "break" | "continue" => {
                            self.pos += 1;
                            if self.range_depth == 0 {
                                return Err(
                                    self.error(format!("{{{{{keyword}}}}} outside {{{{range}}}}"))
                                );
                            }
                            self.expect_close(&keyword)?;
                            nodes.push(if keyword == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "define" | "template" | "block" => {
                            return Err(self.error(format!("{{{{{keyword}}}}} is not supported")));
                        }
                        _ => {
                            let pipe = self.parse_pipeline("command", false)?;
                            self.expect_close("command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                Some(t) => return Err(self.error(format!("unexpected {t}"))),
            }
        }
    }

    fn parse_control(&mut self, control: Control) -> Result<Node, ParseError> {
        self.enter()?;
        let node = self.parse_control_body(control);
        self.nesting -= 1;
        node
    }

    fn parse_control_body(&mut self, control: Control) -> Result<Node, ParseError> {
        let name = match control {
            Control::If => "if",
            Control::With => "with",
            Control::Range => "range",
        };
        let mark = self.vars.len();
        let pipe = self.parse_pipeline(name, control == Control::Range)?;
        self.expect_close(name)?;
        if control == Control::Range {
            self.range_depth += 1;
        }
        let (body, end) = self.parse_list()?;
        if control == Control::Range {
            self.range_depth -= 1;
        }
        let otherwise = match end {
            ListEnd::Eof => return Err(self.error(format!("unexpected EOF in {{{{{name}}}}}"))),
            ListEnd::End => Vec::new(),
            ListEnd::Else => {
                self.skip_space();
                let chained = match self.peek() {
                    Some(Tok::Ident(k)) if k == "if" && control == Control::If => Some(Control::If),
                    Some(Tok::Ident(k)) if k == "with" && control == Control::With => {
                        Some(Control::With)
                    }
                    _ => None,
                };
                match chained {
                    // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer end.
                    Some(c) => {
                        self.pos += 1;
                        vec![self.parse_control(c)?]
                    }
                    None => {
                        self.expect_close("else")?;
                        let (otherwise, end) = self.parse_list()?;
                        match end {
                            ListEnd::End => otherwise,
                            ListEnd::Else => return Err(self.error("expected end; found {{else}}")),
                            ListEnd::Eof => {
                                return Err(self.error(format!("unexpected EOF in {{{{{name}}}}}")));
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        let branch = Box::new(Branch {
            pipe,
            body,
            otherwise,
        });
        Ok(match control {
            Control::If => Node::If(branch),
            Control::With => Node::With(branch),
            Control::Range => Node::Range(branch),
        })
    }

    /// A pipeline up to (not including) `}}` or `)`.
    fn parse_pipeline(&mut self, context: &str, in_range: bool) -> Result<Pipeline, ParseError> {
        self.skip_space();
        let mut decl = Vec::new();
        let mut assign = false;
        if let Some(Tok::Var(_)) = self.peek() {
            let start = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(v)) = self.peek().cloned() {
                self.pos += 1;
                names.push(v);
                self.skip_space();
                match self.peek() {
                    Some(Tok::Comma) if in_range && names.len() == 1 => {
                        self.pos += 1;
                        self.skip_space();
                    }
                    Some(Tok::Declare) | Some(Tok::Assign) => break,
                    _ => {
                        names.clear();
                        break;
                    }
                }
            }
            match self.peek() {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.pos += 1;
                    self.vars.extend(names.iter().cloned());
                    decl = names;
                }
                Some(Tok::Assign) if !names.is_empty() => {
                    self.pos += 1;
                    for n in &names {
                        self.check_var(n)?;
                    }
                    decl = names;
                    assign = true;
                }
                _ => self.pos = start,
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Close) | Some(Tok::RParen) | None => break,
                _ => {}
            }
            cmds.push(self.parse_command()?);
            self.skip_space();
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                Some(Tok::Close) | Some(Tok::RParen) => break,
                Some(t) => return Err(self.error(format!("unexpected {t} in {context}"))),
                None => return Err(self.error(format!("unclosed {context}"))),
            }
        }
        if cmds.is_empty() {
            return Err(self.error(format!("missing value for {context}")));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args[0],
                Operand::Dot | Operand::Nil | Operand::Literal(_)
            ) {
                return Err(self.error(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    fn check_var(&self, name: &str) -> Result<(), ParseError> {
        if self.vars.iter().any(|v| v == name) {
            Ok(())
        } else {
            Err(self.error(format!("undefined variable {name:?}")))
        }
    }

    fn parse_command(&mut self) -> Result<Command, ParseError> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen) | None => break,
                _ => {}
            }
            args.push(self.parse_operand()?);
            match self.peek() {
                Some(Tok::Space) | Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen)
                | None => {}
                Some(t) => return Err(self.error(format!("unexpected {t} in operand"))),
            }
        }
        if args.is_empty() {
            return Err(self.error("empty command"));
        }
        Ok(Command { args })
    }

    fn parse_chain(&mut self) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(Tok::Field(f)) = self.peek() {
            fields.push(f.clone());
            self.pos += 1;
        }
        fields
    }

    fn parse_operand(&mut self) -> Result<Operand, ParseError> {
        let Some(tok) = self.next() else {
            return Err(self.error("unexpected EOF"));
        };
        let term = match tok {
            Tok::Dot => Operand::Dot,
            Tok::Field(f) => {
                let mut fields = vec![f];
                fields.extend(self.parse_chain());
                return Ok(Operand::Field(fields));
            }
            Tok::Var(v) => {
                self.check_var(&v)?;
                let fields = self.parse_chain();
                return Ok(Operand::Var(v, fields));
            }
            Tok::LParen => {
                self.enter()?;
                let pipe = self.parse_pipeline("parenthesized pipeline", false)?;
                self.nesting -= 1;
                self.skip_space();
                if self.next() != Some(Tok::RParen) {
                    return Err(self.error("unclosed left paren"));
                }
                let fields = self.parse_chain();
                return Ok(Operand::Pipe(Box::new(pipe), fields));
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Operand::Literal(Value::Bool(true)),
                "false" => Operand::Literal(Value::Bool(false)),
                "nil" => Operand::Nil,
                "if" | "else" | "end" | "range" | "with" | "break" | "continue" | "define"
                | "template" | "block" => {
                    return Err(self.error(format!("unexpected <{name}> in command")));
                }
                _ => {
                    let Some(f) = Func::lookup(&name) else {
                        return Err(self.error(format!("function {name:?} not defined")));
                    };
                    let fields = self.parse_chain();
                    return Ok(if fields.is_empty() {
                        Operand::Func(f)
                    } else {
                        Operand::Chain(f, fields)
                    });
                }
            },
            Tok::Str(s) => Operand::Literal(Value::Str(Cow::Owned(s))),
            Tok::Char(c) => Operand::Literal(Value::Int(c)),
            Tok::Number(n) => Operand::Literal(
                parse_number(&n)
                    .ok_or_else(|| self.error(format!("illegal number syntax: {n:?}")))?,
            ),
            t => return Err(self.error(format!("unexpected {t} in operand"))),
        };
        if let Some(Tok::Field(_)) = self.peek() {
            return Err(self.error("unexpected . after term"));
        }
        Ok(term)
    }
}

/// A number literal as Go's untyped constant used as `interface{}`: an int when it is
/// written as one, a float64 when it has a fraction or exponent.
fn parse_number(text: &str) -> Option<Value<'static>> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = unsigned.replace('_', "").to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    if !is_hex && lower.contains(['.', 'e']) {
        let f: f64 = lower.parse().ok().filter(|f: &f64| f.is_finite())?;
        return Some(Value::Float(if text.starts_with('-') { -f } else { f }));
    }
    if is_hex && lower.contains(['.', 'p']) {
        // Hexadecimal floating-point literals are not supported.
        return None;
    }
    parse_go_int(text).map(Value::Int)
}
