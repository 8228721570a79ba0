//! The template executor: walks the parsed tree against one entry's data, as Go's
//! `text/template` executes it (Go's truth, `range` over lists, maps and integers, variable
//! scopes, `with`/`if` chains, `break`/`continue`, nil and missing values).
//!
//! Owns evaluation order and scopes, and charging each step to the execution's
//! [`Budget`] (see [`super::limits`]): every node, `range` iteration and function call, and
//! the bytes copied when a value is read or written out. Functions are called through
//! [`super::funcs`] and values printed through [`super::printf`]. It must not know what any
//! function does (except that `and`/`or` short-circuit).

use super::funcs::{self, Call, Func, FuncName, RegexCache};
use super::limits::{Budget, Metered, check_len, work_bytes};
use super::parser::{Branch, Command, Node, Operand, Pipeline};
use super::printf::{fmt_v, sprint_v};
use super::{ExecError, TemplateData, Value, exec_err, root_map, truth};

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Runs `root` against `data`, appending the output to `out`, within one budget.
pub(super) fn execute(
    root: &[Node],
    data: &dyn TemplateData,
    regexes: &mut RegexCache,
    out: &mut String,
) -> Result<(), ExecError> {
    let budget = Budget::new();
    let metered = Metered {
        data,
        budget: &budget,
    };
    let mut state = State {
        data: &metered,
        vars: vec![("$", Value::Root)],
        regexes,
        budget: &budget,
        out_start: out.len(),
    };
    state.walk(&Value::Root, root, out)?;
    Ok(())
}

struct State<'t, 'a> {
    data: &'a dyn TemplateData,
    vars: Vec<(&'t str, Value<'a>)>,
    regexes: &'t mut RegexCache,
    budget: &'a Budget,
    /// Where this execution's output starts in `out` (callers may append to a buffer).
    out_start: usize,
}

impl<'t, 'a> State<'t, 'a> {
    fn walk(
        &mut self,
        dot: &Value<'a>,
        nodes: &'t [Node],
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        for node in nodes {
            self.budget.spend(1)?;
            let flow = match node {
                Node::Text(t) => {
                    out.push_str(t);
                    self.wrote(t.len(), out)?;
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        let before = out.len();
                        self.print_value(&v, out);
                        self.wrote(out.len() - before, out)?;
                    }
                    Flow::Normal
                }
                Node::If(b) | Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &b.pipe)?;
                    let flow = if truth(&v, self.data) {
                        if matches!(node, Node::With(_)) {
                            self.walk(&v, &b.body, out)?
                        } else {
                            self.walk(dot, &b.body, out)?
                        }
                    } else {
                        self.walk(dot, &b.otherwise, out)?
                    };
                    self.vars.truncate(mark);
                    flow
                }
                Node::Range(b) => {
                    let mark = self.vars.len();
                    let flow = self.walk_range(dot, b, out)?;
                    self.vars.truncate(mark);
                    flow
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        dot: &Value<'a>,
        b: &'t Branch,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let items: Vec<(Value<'a>, Value<'a>)> = match v {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, e)| (Value::str(k), e)).collect(),
            Value::Root => root_map(self.data)
                .into_iter()
                .map(|(k, e)| (Value::str(k), e))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return exec_err("can't use two variables to range over an integer");
                }
                // Counted lazily: the bound may come from log data.
                if n <= 0 {
                    return self.walk(dot, &b.otherwise, out);
                }
                for i in 0..n {
                    let elem = Value::Int(i);
                    if self.range_iteration(b, elem.clone(), elem, out)? == Flow::Break {
                        break;
                    }
                }
                return Ok(Flow::Normal);
            }
            Value::Missing | Value::Nil => Vec::new(),
            other => {
                return exec_err(format!(
                    "range can't iterate over {}",
                    sprint_v(&other, self.data)
                ));
            }
        };
        if items.is_empty() {
            return self.walk(dot, &b.otherwise, out);
        }
        for (key, elem) in items {
            if self.range_iteration(b, key, elem, out)? == Flow::Break {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// One pass of a range body: `$i, $e` (or just `$e`) set, `.` = the element, and
    /// variables declared in the body dropped afterwards.
    fn range_iteration(
        &mut self,
        b: &'t Branch,
        key: Value<'a>,
        elem: Value<'a>,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        // Charged even for an empty body: `range` over a count taken from the log line must
        // not spin without bound.
        self.budget.spend(1)?;
        let values = match b.pipe.decl.len() {
            1 => vec![elem.clone()],
            2 => vec![key, elem.clone()],
            _ => Vec::new(),
        };
        for (name, value) in b.pipe.decl.iter().zip(values) {
            self.set_var(name, value);
        }
        let inner = self.vars.len();
        let flow = self.walk(&elem, &b.body, out)?;
        self.vars.truncate(inner);
        Ok(flow)
    }

    /// Sets the innermost variable called `name` (declared by the parser's scope rules).
    fn set_var(&mut self, name: &str, value: Value<'a>) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }

    /// Accounts for `len` bytes just written to `out`: charged, and the output as a whole
    /// kept within [`super::limits::MAX_OUTPUT`].
    fn wrote(&self, len: usize, out: &str) -> Result<(), ExecError> {
        self.budget.spend_bytes(len as u64)?;
        check_len("template output", out.len() - self.out_start)
    }

    /// A copy of `v` for the evaluation, charged by its size.
    fn copy(&self, v: &Value<'a>) -> Result<Value<'a>, ExecError> {
        self.budget.spend_bytes(work_bytes(v))?;
        Ok(v.clone())
    }

    fn print_value(&self, v: &Value<'a>, out: &mut String) {
        match v {
            Value::Missing => out.push_str("<no value>"),
            v => fmt_v(v, self.data, out),
        }
    }

    fn eval_pipeline(
        &mut self,
        dot: &Value<'a>,
        pipe: &'t Pipeline,
    ) -> Result<Value<'a>, ExecError> {
        let mut value: Option<Value<'a>> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // Go digs a nil interface{} result down to an invalid value.
            value = Some(if v == Value::Nil { Value::Missing } else { v });
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.assign {
                self.set_var(name, value.clone());
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'t Command,
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>, ExecError> {
        let first = &cmd.args[0];
        if let Operand::Func(f) = first {
            return self.call(dot, *f, &cmd.args[1..], last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return match first {
                Operand::Field(names) | Operand::Var(_, names) | Operand::Pipe(_, names)
                    if !names.is_empty() =>
                {
                    exec_err(format!(
                        "{} is not a method but has arguments",
                        names[names.len() - 1]
                    ))
                }
                _ => exec_err("can't give argument to non-function"),
            };
        }
        if let Operand::Nil = first {
            return exec_err("nil is not a command");
        }
        self.eval_arg(dot, first)
    }

    fn eval_arg(&mut self, dot: &Value<'a>, op: &'t Operand) -> Result<Value<'a>, ExecError> {
        match op {
            Operand::Dot => self.copy(dot),
            Operand::Nil => Ok(Value::Nil),
            Operand::Literal(v) => Ok(v.clone()),
            Operand::Field(names) => {
                let v = self.copy(dot)?;
                self.field_chain(v, names)
            }
            Operand::Var(name, names) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return exec_err(format!("undefined variable: {name}"));
                };
                let v = self.copy(v)?;
                self.field_chain(v, names)
            }
            Operand::Func(f) => self.call(dot, *f, &[], None),
            Operand::Chain(f, names) => {
                let v = self.call(dot, *f, &[], None)?;
                self.field_chain(v, names)
            }
            Operand::Pipe(pipe, names) => {
                let v = self.eval_pipeline(dot, pipe)?;
                self.field_chain(v, names)
            }
        }
    }

    fn field_chain(&self, mut v: Value<'a>, names: &[String]) -> Result<Value<'a>, ExecError> {
        // Borrowing through the `'a` reference lets field values borrow from the data.
        let data: &'a dyn TemplateData = self.data;
        for name in names {
            v = match v {
                Value::Root => data.field(name).map_or(Value::Missing, Value::Str),
                Value::Map(mut m) => m.remove(name.as_str()).unwrap_or(Value::Missing),
                Value::Missing => Value::Missing,
                Value::Nil => {
                    return exec_err(format!("nil pointer evaluating interface {{}}.{name}"));
                }
                other => {
                    return exec_err(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    ));
                }
            };
        }
        Ok(v)
    }

    fn call(
        &mut self,
        dot: &Value<'a>,
        f: Func,
        args: &'t [Operand],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>, ExecError> {
        if let Some(want) = f.short_circuit() {
            // and/or stop at the first argument that decides, without evaluating the rest.
            if args.is_empty() && last.is_none() {
                return exec_err(format!(
                    "wrong number of args for {}: want at least 1 got 0",
                    f.name()
                ));
            }
            let mut v = Value::Missing;
            for a in args {
                v = self.eval_arg(dot, a)?;
                if truth(&v, self.data) == want {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.eval_arg(dot, a)?);
        }
        values.extend(last);
        funcs::call(
            f,
            values,
            &mut Call {
                data: self.data,
                regexes: self.regexes,
                budget: self.budget,
            },
        )
    }
}
