//! Fuzzing the engine: random templates over random data must parse or be refused, and
//! execute or fail, without a panic, and a successful output stays within the limit.
//!
//! Templates come from a grammar of the engine's own syntax (so most of them parse and reach
//! the executor, its functions and `printf`), and as raw text. Data values lean towards
//! what hostile lines carry: huge counts and precisions, format verbs, regex syntax.
//!
//! The case count is proptest's (256 unless `PROPTEST_CASES` says otherwise), so CI stays
//! quick and a long run is `PROPTEST_CASES=1000000 cargo test --lib template::fuzz`.

use std::borrow::Cow;

use proptest::prelude::*;

use super::funcs::all_names;
use super::limits::MAX_OUTPUT;
use super::{Template, TemplateData};

struct Data(Vec<(String, String)>);

impl TemplateData for Data {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }

    fn entries(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

/// Text a template or a value may hold: printable ASCII without `"` and `\`, so it can be
/// quoted as a Go string literal as it is.
const LITERAL_TEXT: &str = "[ !#-\\[\\]-~]{0,10}";

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (-3i64..70).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "70000",
            "1000000",
            "1000001",
            "10000000",
            "9223372036854775807",
            "-1",
            "0x1f",
            "1_000",
            "1.5",
            "-0.0",
            "1e300",
            "5e-324",
            "017",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("a literal", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
    ]
}

fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        LITERAL_TEXT.prop_map(|s| format!("\"{s}\"")),
        // printf formats: verbs, flags, widths, precisions, `*` and `[n]`.
        "(%[-+# 0]{0,2}(\\[[0-9]\\])?(\\*|[0-9]{1,8})?(\\.(\\*|[0-9]{0,8}))?[a-zA-Z%]?|[a-z ]){1,4}"
            .prop_map(|s| format!("\"{s}\"")),
        prop::sample::select(vec!["\"\"", "\"(.*)\"", "\"${1}${1}\"", "\"$0$0$0\"", "\"[\""])
            .prop_map(str::to_string),
    ]
}

/// Mostly strings, which most functions take; numbers for counts, widths and precisions.
fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![".a", ".n", ".prec", ".y", "$.a", "$x", "."])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec![".missing", "$", "true", "nil"]).prop_map(str::to_string),
        2 => number(),
        3 => string_literal(),
    ]
}

/// How many arguments each function takes (variadic ones: a few), so that most calls get
/// past Go's argument count check and into the function.
const ARITY: &[(&str, usize)] = &[
    ("not", 1),
    ("len", 1),
    ("index", 2),
    ("slice", 3),
    ("print", 3),
    ("println", 2),
    ("printf", 3),
    ("eq", 2),
    ("ne", 2),
    ("lt", 2),
    ("le", 2),
    ("gt", 2),
    ("ge", 2),
    ("and", 2),
    ("or", 2),
    ("ToLower", 1),
    ("ToUpper", 1),
    ("Replace", 4),
    ("Trim", 2),
    ("TrimLeft", 2),
    ("TrimRight", 2),
    ("TrimPrefix", 2),
    ("TrimSuffix", 2),
    ("TrimSpace", 1),
    ("Hash", 2),
    ("Sha2Hash", 2),
    ("regexReplaceAll", 3),
    ("regexReplaceAllLiteral", 3),
    ("default", 2),
    ("empty", 1),
    ("coalesce", 3),
    ("ternary", 3),
    ("trunc", 2),
    ("contains", 2),
    ("hasPrefix", 2),
    ("hasSuffix", 2),
    ("upper", 1),
    ("lower", 1),
    ("title", 1),
    ("replace", 3),
    ("quote", 2),
    ("squote", 2),
    ("b64enc", 1),
    ("b64dec", 1),
    ("toJson", 1),
    ("toString", 1),
    ("trim", 1),
    ("trimAll", 2),
    ("trimPrefix", 2),
    ("trimSuffix", 2),
    ("repeat", 2),
    ("substr", 3),
    ("nospace", 1),
    ("indent", 2),
    ("nindent", 2),
    ("cat", 3),
    ("join", 2),
    ("splitList", 2),
    ("split", 2),
    ("first", 1),
    ("last", 1),
    ("list", 3),
    ("add", 2),
    ("add1", 1),
    ("sub", 2),
    ("mul", 2),
    ("div", 2),
    ("mod", 2),
    ("max", 2),
    ("min", 2),
    ("atoi", 1),
    ("int", 1),
    ("int64", 1),
    ("float64", 1),
    ("sha256sum", 1),
    ("regexMatch", 2),
    ("regexFind", 2),
];

/// A call with the function's own number of arguments.
fn call(arg: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    prop::sample::select(ARITY).prop_flat_map(move |(f, n)| {
        prop::collection::vec(arg.clone(), n)
            .prop_map(move |args| format!("{f} {}", args.join(" ")))
    })
}

/// A pipeline: commands (an operand, or a function with arguments, some of them nested
/// pipelines in parentheses) joined with `|`.
fn pipeline() -> impl Strategy<Value = String> {
    let func = prop::sample::select(all_names());
    let leaf = prop_oneof![
        2 => operand(),
        6 => call(operand().boxed()),
        1 => (func, prop::collection::vec(operand(), 0..4))
            .prop_map(|(f, args)| format!("{f} {}", args.join(" "))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let nested = prop_oneof![operand(), inner.clone().prop_map(|p| format!("({p})"))];
        prop_oneof![
            call(nested.boxed()),
            // The piped value is the last argument.
            (inner, prop::sample::select(ARITY)).prop_flat_map(|(p, (f, n))| {
                prop::collection::vec(operand(), n.saturating_sub(1))
                    .prop_map(move |args| format!("{p} | {f} {}", args.join(" ")))
            }),
        ]
    })
}

/// A template body: text, actions, declarations and control structures, nested.
fn body() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        LITERAL_TEXT.prop_map(|s| s.replace('{', "(")),
        pipeline().prop_map(|p| format!("{{{{ {p} }}}}")),
        pipeline().prop_map(|p| format!("{{{{ $x = {p} }}}}")),
        Just("{{/* c */}}".to_string()),
        Just("{{- . -}}".to_string()),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let block = prop::collection::vec(inner, 1..4).prop_map(|parts| parts.concat());
        prop_oneof![
            (pipeline(), block.clone(), prop::option::of(block.clone())).prop_map(
                |(p, then, otherwise)| match otherwise {
                    Some(o) => format!("{{{{ if {p} }}}}{then}{{{{ else }}}}{o}{{{{ end }}}}"),
                    None => format!("{{{{ if {p} }}}}{then}{{{{ end }}}}"),
                }
            ),
            (pipeline(), block.clone()).prop_map(|(p, b)| format!(
                "{{{{ range $i, $e := {p} }}}}{b}{{{{ if $i }}}}{{{{ break }}}}{{{{ end }}}}{{{{ end }}}}"
            )),
            (pipeline(), block.clone())
                .prop_map(|(p, b)| format!("{{{{ range {p} }}}}{b}{{{{ end }}}}")),
            (pipeline(), block.clone())
                .prop_map(|(p, b)| format!("{{{{ with {p} }}}}{b}{{{{ end }}}}")),
            block,
        ]
    })
}

fn data() -> impl Strategy<Value = Vec<(String, String)>> {
    let value = prop_oneof![LITERAL_TEXT.prop_map(|s| s), number(), "\\PC{0,12}"];
    (value.clone(), value.clone(), value.clone(), value).prop_map(|(a, n, prec, y)| {
        vec![
            ("a".to_string(), a),
            ("n".to_string(), n),
            ("prec".to_string(), prec),
            ("y".to_string(), y),
        ]
    })
}

fn run(template: &str, data: Vec<(String, String)>) -> Result<(), TestCaseError> {
    let Ok(mut t) = Template::parse(template) else {
        return Ok(());
    };
    let data = Data(data);
    // Twice: the regex cache and anything else kept between executions must stay sound.
    for _ in 0..2 {
        let mut out = String::new();
        if t.execute(&data, &mut out).is_ok() {
            prop_assert!(out.len() <= MAX_OUTPUT, "{} bytes", out.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn grammar_templates_never_panic(body in body(), data in data()) {
        run(&format!("{{{{ $x := .a }}}}{body}"), data)?;
    }

    #[test]
    fn raw_templates_never_panic(
        parts in prop::collection::vec(
            prop_oneof![
                Just("{{".to_string()),
                Just("}}".to_string()),
                Just("{{-".to_string()),
                Just(" -}}".to_string()),
                "[ -~]{0,6}",
                "\\PC{0,3}",
            ],
            0..12,
        ),
        data in data(),
    ) {
        run(&parts.concat(), data)?;
    }
}
