//! Tests of the whole template engine: parse, execute, functions and printing together.

use super::*;

struct Map(Vec<(&'static str, &'static str)>);

impl TemplateData for Map {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Cow::Borrowed(*v))
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn render(template: &str, data: &[(&'static str, &'static str)]) -> Result<String, String> {
    let mut t = Template::parse(template).map_err(|e| format!("parse: {e}"))?;
    let mut out = String::new();
    t.execute(&Map(data.to_vec()), &mut out)
        .map_err(|e| format!("exec: {e}"))?;
    Ok(out)
}

fn ok(template: &str, data: &[(&'static str, &'static str)]) -> String {
    match render(template, data) {
        Ok(s) => s,
        Err(e) => panic!("{template}: {e}"),
    }
}

#[test]
fn text_fields_and_pipelines() {
    let d = [("Value", "loki"), ("level", "warn")];
    assert_eq!(ok("{{ .Value | ToUpper }} doki", &d), "LOKI doki");
    assert_eq!(ok("{{ ToLower \"ABC\" }}", &d), "abc");
    assert_eq!(
        ok("{{.Value}} in module {{.module}}", &d),
        "loki in module <no value>"
    );
    assert_eq!(ok("plain text", &d), "plain text");
}

#[test]
fn promtail_documented_examples() {
    let d = [("Value", "WARN")];
    let t = r#"{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}"#;
    assert_eq!(ok(t, &d), "OK");
    assert_eq!(ok(t, &[("Value", "INFO")]), "INFO");
    let d = [("Value", "Some Silly Value With Lots Of Spaces")];
    assert_eq!(
        ok(r#"{{ Replace .Value " " "_" -1 | ToLower }}"#, &d),
        "some_silly_value_with_lots_of_spaces"
    );
    assert_eq!(
        ok(r#"{{ regexReplaceAll "(Silly)" .Value "${1}foo" }}"#, &d),
        "Some Sillyfoo Value With Lots Of Spaces"
    );
    assert_eq!(
        ok(r#"{{ regexReplaceAll "( |Of)" .Value "_" }}"#, &d),
        "Some_Silly_Value_With_Lots___Spaces"
    );
    assert_eq!(
        ok(r#"{{ Trim .Value "!" }}"#, &[("Value", "!!!WOO!!")]),
        "WOO"
    );
    assert_eq!(ok("{{ add 7 3 }}", &[]), "10");
}

#[test]
fn hashes_are_hex_of_salt_then_input() {
    // sha256("this is PII datasalt") and sha3-256 of the same, computed independently.
    let d = [("Value", "this is PII data")];
    assert_eq!(
        ok(r#"{{ Sha2Hash .Value "salt" }}"#, &d),
        "5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2"
    );
    assert_eq!(
        ok(r#"{{ Hash .Value "salt" }}"#, &d),
        "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"
    );
    assert_eq!(
        ok(r#"{{ sha256sum "abc" }}"#, &[]),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn case_mapping_is_per_rune_as_in_go() {
    assert_eq!(
        ok(r#"{{ ToUpper "straße àé" }}|{{ ToLower "ÀÉ Ü" }}"#, &[]),
        "STRAßE ÀÉ|àé ü"
    );
}

#[test]
fn missing_value_is_an_error_for_string_functions() {
    assert!(
        render("{{ .Value | ToLower }}", &[])
            .unwrap_err()
            .starts_with("exec")
    );
    assert!(
        render("{{ ToUpper 5 }}", &[])
            .unwrap_err()
            .contains("expected string")
    );
}

#[test]
fn invalid_regex_in_function_is_an_execution_error() {
    let e = render(
        r#"{{ regexReplaceAll "\\K" .Value "x" }}"#,
        &[("Value", "a")],
    )
    .unwrap_err();
    assert!(e.starts_with("exec"), "{e}");
    assert_eq!(ok(r#"{{ regexMatch "(" "a" }}"#, &[]), "false");
}

#[test]
fn control_structures() {
    let d = [("a", "1"), ("b", "")];
    assert_eq!(
        ok("{{ if .b }}B{{ else if .a }}A{{ else }}N{{ end }}", &d),
        "A"
    );
    assert_eq!(ok("{{ if .missing }}M{{ end }}", &d), "");
    assert_eq!(
        ok("{{ with .a }}[{{ . }}]{{ else }}none{{ end }}", &d),
        "[1]"
    );
    assert_eq!(
        ok(
            "{{ with .b }}[{{ . }}]{{ else with .a }}<{{.}}>{{ end }}",
            &d
        ),
        "<1>"
    );
    assert_eq!(
        ok(
            r#"{{ range $i, $e := splitList "," "x,y,z" }}{{ $i }}={{ $e }};{{ end }}"#,
            &d
        ),
        "0=x;1=y;2=z;"
    );
    assert_eq!(
        ok(
            r#"{{ range splitList "," "x,y,z" }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}"#,
            &d
        ),
        "x"
    );
    assert_eq!(
        ok(
            r#"{{ range splitList "," "x,y,z" }}{{ if eq . "y" }}{{ continue }}{{ end }}{{ . }}{{ end }}"#,
            &d
        ),
        "xz"
    );
    assert_eq!(
        ok("{{ range .missing }}x{{ else }}empty{{ end }}", &d),
        "empty"
    );
    assert_eq!(
        ok("{{ range $k, $v := . }}{{ $k }}:{{ $v }},{{ end }}", &d),
        "a:1,b:,"
    );
    assert_eq!(ok("{{ range 3 }}{{ . }}{{ end }}", &d), "012");
    assert_eq!(
        ok(
            "{{ $e := 0 }}{{ range $e = splitList \",\" \"p,q\" }}{{ end }}{{ $e }}",
            &d
        ),
        "q"
    );
    assert_eq!(ok("{{ range 0 }}x{{ else }}none{{ end }}", &d), "none");
}

#[test]
fn variables_declare_assign_and_scope() {
    assert_eq!(
        ok("{{ $x := \"a\" }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", &[]),
        "ab"
    );
    assert_eq!(
        ok(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            &[]
        ),
        "2"
    );
    assert_eq!(
        ok("{{ $.a }}{{ with .a }}{{ $.a }}{{ end }}", &[("a", "v")]),
        "vv"
    );
    let e = Template::parse("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}").unwrap_err();
    assert!(e.to_string().contains("undefined variable"), "{e}");
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(ok("a  {{- \"b\" -}}  c", &[]), "abc");
    assert_eq!(ok("a {{/* note */}} b", &[]), "a  b");
    assert_eq!(ok("a {{- /* note */ -}} b", &[]), "ab");
    assert_eq!(ok("{{ -3 }}", &[]), "-3");
}

#[test]
fn literals_print_as_go_constants() {
    assert_eq!(
        ok(
            "{{ 1.5 }} {{ 0x10 }} {{ 'a' }} {{ true }} {{ 1e6 }} {{ 100000.0 }}",
            &[]
        ),
        "1.5 16 97 true 1e+06 100000"
    );
    assert_eq!(
        ok(r#"{{ "a\tb\u00e9" }}|{{ `raw\n` }}"#, &[]),
        "a\tbé|raw\\n"
    );
}

#[test]
fn comparisons_follow_go_rules() {
    let d = [("n", "5")];
    assert_eq!(
        ok(r#"{{ eq .n "5" }} {{ eq .n "1" "5" }} {{ ne .n "5" }}"#, &d),
        "true true false"
    );
    assert_eq!(
        ok(
            r#"{{ lt 1 2 }} {{ ge "b" "a" }} {{ le 2 2 }} {{ gt 1.5 2.5 }}"#,
            &d
        ),
        "true true true false"
    );
    assert_eq!(ok(r#"{{ eq .missing "x" }}"#, &d), "false");
    assert!(
        render(r#"{{ eq 1 "1" }}"#, &d)
            .unwrap_err()
            .contains("incompatible")
    );
    assert!(render(r#"{{ lt .missing 1 }}"#, &d).is_err());
}

#[test]
fn and_or_return_the_deciding_value_and_short_circuit() {
    let d = [("a", "x"), ("b", "")];
    assert_eq!(
        ok("{{ and .a .b }}|{{ or .b .a }}|{{ or .b .missing }}", &d),
        "|x|<no value>"
    );
    // The failing call after a deciding `or` argument is never made.
    assert_eq!(ok("{{ or .a (ToUpper .missing) }}", &d), "x");
    assert_eq!(ok("{{ not .b }}", &d), "true");
}

#[test]
fn printf_verbs_flags_and_errors() {
    let d = [("s", "hi")];
    assert_eq!(
        ok(r#"{{ printf "%s-%d-%q" .s 42 .s }}"#, &d),
        "hi-42-\"hi\""
    );
    assert_eq!(
        ok(
            r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "a" "b" -42 255 255 8 5 }}"#,
            &d
        ),
        "    a|b    |-0042|ff|FF|10|101"
    );
    assert_eq!(
        ok(
            r#"{{ printf "%.2f|%e|%g|%v|%8.3f" 3.14159 1234.5678 0.000012 2.5 2.0 }}"#,
            &d
        ),
        "3.14|1.234568e+03|1.2e-05|2.5|   2.000"
    );
    assert_eq!(
        ok(r#"{{ printf "%d %s" "x" }}"#, &d),
        "%!d(string=x) %!s(MISSING)"
    );
    assert_eq!(
        ok(r#"{{ printf "%s" "a" "b" }}"#, &d),
        "a%!(EXTRA string=b)"
    );
    assert_eq!(
        ok(
            r#"{{ printf "%v %c %U %t %%" (list 1 "a") 65 65 true }}"#,
            &d
        ),
        "[1 a] A U+0041 true %"
    );
    assert_eq!(ok(r#"{{ .s | printf "<%s>" }}"#, &d), "<hi>");
}

#[test]
fn builtin_len_index_slice_print() {
    let d = [("s", "héllo")];
    assert_eq!(
        ok(
            r#"{{ len .s }} {{ index .s 0 }} {{ slice .s 3 }} {{ index (list "a" "b") 1 }}"#,
            &d
        ),
        "6 104 llo b"
    );
    assert_eq!(
        ok(r#"{{ print "a" "b" 1 2 "c" }}|{{ println 1 "x" }}"#, &d),
        "ab1 2c|1 x\n"
    );
    assert_eq!(ok(r#"{{ index . "s" }}"#, &d), "héllo");
    assert!(render(r#"{{ index (list 1) 5 }}"#, &d).is_err());
}

#[test]
fn sprig_string_functions() {
    let d = [("v", "Hello World")];
    assert_eq!(
        ok(
            r#"{{ .v | upper }} {{ .v | lower }} {{ "hello world" | title }}"#,
            &d
        ),
        "HELLO WORLD hello world Hello World"
    );
    assert_eq!(
        ok(
            r#"{{ trunc 5 .v }}|{{ trunc -5 .v }}|{{ trunc 50 .v }}"#,
            &d
        ),
        "Hello|World|Hello World"
    );
    assert_eq!(
        ok(
            r#"{{ contains "lo W" .v }} {{ hasPrefix "He" .v }} {{ hasSuffix "x" .v }}"#,
            &d
        ),
        "true true false"
    );
    assert_eq!(ok(r#"{{ .v | replace "World" "Loki" }}"#, &d), "Hello Loki");
    assert_eq!(
        ok(
            r#"{{ quote .v "a\"b" }}|{{ squote .v }}|{{ quote .missing }}"#,
            &d
        ),
        "\"Hello World\" \"a\\\"b\"|'Hello World'|"
    );
    assert_eq!(
        ok(
            r#"{{ .v | b64enc }}|{{ "SGVsbG8gV29ybGQ=" | b64dec }}|{{ "!!" | b64dec }}"#,
            &d
        ),
        "SGVsbG8gV29ybGQ=|Hello World|illegal base64 data at input byte 0"
    );
    assert_eq!(
        ok(
            r#"{{ "  x y  " | trim }}|{{ trimAll "-" "--a--" }}|{{ trimPrefix "He" .v }}|{{ trimSuffix "ld" .v }}"#,
            &d
        ),
        "x y|a|llo World|Hello Wor"
    );
    assert_eq!(
        ok(
            r#"{{ repeat 3 "ab" }}|{{ substr 0 5 .v }}|{{ substr 6 -1 .v }}|{{ nospace .v }}"#,
            &d
        ),
        "ababab|Hello|World|HelloWorld"
    );
    assert_eq!(
        ok(r#"{{ indent 2 "a\nb" }}|{{ nindent 1 "c" }}"#, &d),
        "  a\n  b|\n c"
    );
    assert_eq!(
        ok(
            r#"{{ cat "a" 1 .missing "b" }}|{{ splitList "," "a,b" | join "-" }}|{{ (split "," "a,b")._1 }}"#,
            &d
        ),
        "a 1 b|a-b|b"
    );
    assert_eq!(
        ok(
            r#"{{ toJson .v }}|{{ toJson (list 1 "<x>" true) }}|{{ toString 12 }}"#,
            &d
        ),
        "\"Hello World\"|[1,\"\\u003cx\\u003e\",true]|12"
    );
    assert_eq!(
        ok(
            r#"{{ first (splitList "," "a,b") }}{{ last (splitList "," "a,b") }}"#,
            &d
        ),
        "ab"
    );
    assert!(render(r#"{{ first "ab" }}"#, &d).is_err());
}

#[test]
fn sprig_defaults_and_math() {
    let d = [("e", ""), ("n", "7")];
    assert_eq!(
        ok(
            r#"{{ .missing | default "d" }}|{{ .e | default "d" }}|{{ .n | default "d" }}"#,
            &d
        ),
        "d|d|7"
    );
    assert_eq!(
        ok(
            r#"{{ empty .e }} {{ coalesce .e .missing .n }} {{ ternary "y" "n" true }}"#,
            &d
        ),
        "true 7 y"
    );
    assert_eq!(
        ok(
            r#"{{ add .n 1 "2" }} {{ sub 10 .n }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 .n }}"#,
            &d
        ),
        "10 3 24 3 1 8"
    );
    assert_eq!(
        ok(
            r#"{{ max 1 9 3 }} {{ min 4 2 }} {{ atoi "42" }} {{ atoi "x" }} {{ int "0x10" }} {{ int "5.0" }} {{ float64 "1.5" }}"#,
            &d
        ),
        "9 2 42 0 16 5 1.5"
    );
    assert!(render("{{ div 1 0 }}", &d).is_err());
}

#[test]
fn deep_nesting_is_a_parse_error_not_a_crash() {
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    let e = Template::parse(&deep).unwrap_err();
    assert!(e.to_string().contains("nests more than"), "{e}");
    let ok_depth = format!("{{{{ {}1{} }}}}", "(".repeat(90), ")".repeat(90));
    assert_eq!(ok(&ok_depth, &[]), "1");
    let ifs = format!("{}x{}", "{{ if 1 }}".repeat(90), "{{ end }}".repeat(90));
    assert_eq!(ok(&ifs, &[]), "x");
}

#[test]
fn parse_errors_are_reported() {
    for bad in [
        "{{ nosuchfunc }}",
        "{{ if .a }}x",
        "{{ end }}",
        "{{ .a",
        "{{ $undefined }}",
        "{{ define \"x\" }}{{ end }}",
        "{{ break }}",
        "{{ .a | \"lit\" }}",
        "{{ \"unterminated }}",
        "{{ ( .a }}",
        "{{ }}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad} parsed");
    }
}

#[test]
fn execution_errors_are_reported() {
    for bad in [
        "{{ .a.b }}",
        "{{ nil }}",
        "{{ .a 1 }}",
        "{{ len 3 }}",
        "{{ range .a }}{{ end }}",
        "{{ repeat -1 \"x\" }}",
    ] {
        assert!(render(bad, &[("a", "str")]).is_err(), "{bad} executed");
    }
}

#[test]
fn root_prints_and_serialises_as_a_sorted_map() {
    let d = [("b", "2"), ("a", "1")];
    assert_eq!(
        ok("{{ . }}|{{ toJson . }}|{{ len . }}", &d),
        "map[a:1 b:2]|{\"a\":\"1\",\"b\":\"2\"}|2"
    );
}

#[test]
fn regex_cache_reuses_compiled_patterns() {
    let mut t = Template::parse(r#"{{ regexReplaceAll "[0-9]+" .Value "N" }}"#).unwrap();
    for line in ["a1", "b22"] {
        let data = Map(vec![("Value", line)]);
        let mut out = String::new();
        t.execute(&data, &mut out).unwrap();
        assert!(out.ends_with('N'));
    }
    assert_eq!(t.regexes.compiled.len(), 1);
}

/// Go's `zeroFill` from fmt_test.go: `prefix`, zeros, `suffix`, `width` long without prefix.
fn zero_fill(prefix: &str, width: usize, suffix: &str) -> String {
    format!("{prefix}{}{suffix}", "0".repeat(width - suffix.len()))
}

/// `printf` with `args` written as template operands.
fn printf(format: &str, args: &str) -> String {
    let quoted = format.replace('\\', "\\\\").replace('"', "\\\"");
    ok(&format!("{{{{ printf \"{quoted}\" {args} }}}}"), &[])
}

#[test]
fn printf_width_and_precision_follow_go_fmt_tests() {
    // fmt_test.go's startests (the cases a template can express: ints, strings, nil).
    for (format, args, want) in [
        ("%*d", "4 42", "  42"),
        ("%-*d", "4 42", "42  "),
        ("%*d", "-4 42", "42  "),
        ("%-*d", "-4 42", "42  "),
        ("%.*d", "4 42", "0042"),
        ("%*.*d", "8 4 42", "    0042"),
        ("%0*d", "4 42", "0042"),
        ("%*d", "nil 42", "%!(BADWIDTH)42"),
        ("%*d", "10000000 42", "%!(BADWIDTH)42"),
        ("%*d", "-10000000 42", "%!(BADWIDTH)42"),
        ("%.*d", "nil 42", "%!(BADPREC)42"),
        ("%.*d", "-1 42", "%!(BADPREC)42"),
        ("%.*d", "10000000 42", "%!(BADPREC)42"),
        ("%*d", r#"5 "foo""#, "%!d(string=  foo)"),
        ("%*% %d", "20 5", "% 5"),
        ("%*", "4", "%!(NOVERB)"),
        // reorderTests: a literal too long to read ends the format.
        ("%2147483648d", "42", "%!(NOVERB)%!(EXTRA int=42)"),
        ("%-2147483648d", "42", "%!(NOVERB)%!(EXTRA int=42)"),
        ("%.2147483648d", "42", "%!(NOVERB)%!(EXTRA int=42)"),
        ("%.[]", "", "%!](BADINDEX)"),
        ("%.-3d", "42", "%!-(int=42)3d"),
        ("%[3]", "2 1", "%!(NOVERB)"),
        ("%[1].2d", "5 6", "%!d(BADINDEX)"),
        ("%3.[2]d", "7", "%!d(BADINDEX)"),
        ("%d %[3]d %d", "1 2", "1 %!d(BADINDEX) 2"),
        // fmtTests: integer precision, and zero padding through it.
        ("%.0d", "0", ""),
        ("%5.0d", "0", "     "),
        ("%20.8d", "1234", "            00001234"),
        ("%20.8d", "-1234", "           -00001234"),
        ("%020.8d", "1234", "            00001234"),
        ("%-20.8d", "-1234", "-00001234           "),
        ("%-#20.8x", "0x1234abc", "0x01234abc          "),
        ("%-#20.8X", "0x1234abc", "0X01234ABC          "),
        ("%-#20.8o", "01234", "00001234            "),
        ("%.20b", "7", "00000000000000000111"),
        ("%#o", "0", "0"),
        ("%O", "01234", "0o1234"),
        ("%010d", "-12345", "-000012345"),
        ("%+10d", "12345", "    +12345"),
    ] {
        assert_eq!(printf(format, args), want, "printf {format:?} {args}");
    }
    // "Test correct f.intbuf overflow checks."
    for (format, arg, want) in [
        ("%068d", "1", zero_fill("", 68, "1")),
        ("%068d", "-1", zero_fill("-", 67, "1")),
        ("%#.68x", "42", zero_fill("0x", 68, "2a")),
        ("%.68d", "-42", zero_fill("-", 68, "42")),
        ("%+.68d", "42", zero_fill("+", 68, "42")),
        ("% .68d", "42", zero_fill(" ", 68, "42")),
        ("% +.68d", "42", zero_fill("+", 68, "42")),
    ] {
        assert_eq!(printf(format, arg), want, "printf {format:?} {arg}");
    }
    // Infinities and NaN are padded with spaces even with `0`.
    assert_eq!(
        printf("%020f", r#"(float64 "+Inf")"#),
        "                +Inf"
    );
    assert_eq!(
        printf("%-020f", r#"(float64 "-Inf")"#),
        "-Inf                "
    );
    assert_eq!(
        printf("%020f", r#"(float64 "NaN")"#),
        "                 NaN"
    );
}

#[test]
fn printf_precisions_up_to_go_bound_format_every_digit() {
    // Rust's formatter refuses precisions past 65535 and asserts on long `%g`s; Go formats
    // anything up to its bound of 10^6.
    let f = printf("%.65536f", "1.5");
    assert_eq!(f.len(), 2 + 65536);
    assert!(f.starts_with("1.5000") && f.bytes().skip(3).all(|b| b == b'0'));
    let f = printf("%.*f", "1000000 0.1");
    assert_eq!(f.len(), 2 + 1_000_000);
    // The exact binary value of 0.1, then zeros.
    assert!(
        f.starts_with("0.1000000000000000055511151231257827"),
        "{}",
        &f[..40]
    );
    assert!(f[1100..].bytes().all(|b| b == b'0'));
    let e = printf("%.70000e", "1.5");
    assert_eq!(e.len(), "1.".len() + 70000 + "e+00".len());
    assert!(e.starts_with("1.5000") && e.ends_with("0e+00"));
    assert_eq!(printf("%.70000g", "1.5"), "1.5");
    assert_eq!(printf("%.70000v", "1.5"), "1.5");
    // As in Go: the exponent is under the precision, so every integer digit of the double.
    let g = printf("%.70000G", "1e300");
    assert_eq!(g.len(), 301);
    assert!(
        g.starts_with("10000000000000000525047602552044202487"),
        "{g}"
    );
    assert_eq!(
        printf("%.800g", "0.1"),
        "0.1000000000000000055511151231257827021181583404541015625"
    );
    assert_eq!(printf("%.*g", "1000001 1.5"), "%!(BADPREC)1.5");
    assert_eq!(printf("%.*e", "1000001 1.5"), "%!(BADPREC)1.500000e+00");
    // A literal width reads up to Go's parsenum bound.
    assert_eq!(printf("%1000000d", "7").len(), 1_000_000);
    assert_eq!(printf("%10000000d", "7").len(), 10_000_000);
    assert_eq!(printf("%100000000d", "7"), "%!(NOVERB)%!(EXTRA int=7)");
    // From the log line, as in issue 17.
    let t = r#"{{ printf "%.*f" (atoi .prec) 1.5 }}"#;
    assert_eq!(ok(t, &[("prec", "70000")]).len(), 70002);
    assert_eq!(ok(t, &[("prec", "70000000")]), "%!(BADPREC)1.500000");
}

/// Renders `template` and expects an execution error mentioning `what`.
fn fails_with(template: &str, data: &[(&'static str, &'static str)], what: &str) {
    let started = std::time::Instant::now();
    match render(template, data) {
        Ok(out) => panic!("{template}: rendered {} bytes", out.len()),
        Err(e) => assert!(
            e.starts_with("exec: ") && e.contains(what),
            "{template}: {e}"
        ),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{template} took {:?}",
        started.elapsed()
    );
}

const OVER_LIMIT: &str = "exceeds the 16 MiB limit";
const OVER_BUDGET: &str = "steps";

#[test]
fn functions_that_build_strings_stop_at_the_output_limit() {
    let d = [("a", "hello")];
    // Doubling a 5-byte line: stops at the limit or the budget, never aborts.
    let t = "{{ $x := .a }}{{ range 100 }}{{ $x = cat $x $x }}{{ end }}{{ len $x }}";
    assert!(render(t, &d).is_err());
    let big = r#"{{ $big := repeat 10485760 "x" }}"#;
    fails_with(&format!("{big}{{{{ cat $big $big }}}}"), &d, OVER_LIMIT);
    fails_with(
        r#"{{ Replace .a "" (repeat 10485760 "y") -1 }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(
        r#"{{ Replace .a "l" (repeat 10485760 "y") 2 }}"#,
        &d,
        OVER_LIMIT,
    );
    assert_eq!(ok(r#"{{ Replace .a "l" "L" 1 }}"#, &d), "heLlo");
    fails_with(
        r#"{{ replace "" (repeat 5000000 "y") .a }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(
        r#"{{ regexReplaceAll "" .a (repeat 5000000 "z") }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(
        r#"{{ regexReplaceAllLiteral "l" .a (repeat 10000000 "z") }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(
        &format!("{big}{{{{ regexReplaceAll \"(x+)\" $big \"${{1}}-${{1}}\" }}}}"),
        &d,
        OVER_LIMIT,
    );
    // References to short groups in a long match still expand within the limit.
    assert_eq!(
        ok(
            r#"{{ regexReplaceAll "(h)(e)llo" .a "${2}${1}${1}${1}" }}"#,
            &d
        ),
        "ehhh"
    );
    fails_with(r#"{{ printf "%10000000d%10000000d" 1 2 }}"#, &d, OVER_LIMIT);
    fails_with(
        &format!("{big}{{{{ printf \"%s%s\" $big $big }}}}"),
        &d,
        OVER_LIMIT,
    );
    fails_with(&format!("{big}{{{{ print $big $big }}}}"), &d, OVER_LIMIT);
    fails_with(
        r#"{{ join (repeat 10485760 "s") (list 1 2 3) }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(
        r#"{{ splitList "" (repeat 10000000 "a") }}"#,
        &d,
        OVER_LIMIT,
    );
    fails_with(r#"{{ repeat 20000000 "a" }}"#, &d, OVER_LIMIT);
    fails_with(r#"{{ indent 20000000 "a" }}"#, &d, OVER_LIMIT);
    fails_with(
        &format!("{big}{{{{ $big }}}}{{{{ $big }}}}"),
        &d,
        OVER_LIMIT,
    );
}

#[test]
fn range_and_long_executions_stop_at_the_step_budget() {
    fails_with(
        "{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}",
        &[],
        OVER_BUDGET,
    );
    fails_with(
        "{{ range (atoi .n) }}{{ end }}",
        &[("n", "9000000000000000000")],
        OVER_BUDGET,
    );
    fails_with("{{ range 100000000 }}x{{ end }}", &[], OVER_BUDGET);
    fails_with(
        "{{ range 1000000 }}{{ if . }}{{ end }}{{ end }}",
        &[("a", "x")],
        OVER_BUDGET,
    );
    // Reading the whole data over and over is charged by its size.
    let wide: &'static str = Box::leak("x".repeat(6400).into_boxed_str());
    fails_with(
        "{{ range 100000 }}{{ len $ }}{{ end }}",
        &[("a", wide)],
        OVER_BUDGET,
    );
    // Copying a big value over and over.
    fails_with(
        r#"{{ $x := repeat 1000000 "x" }}{{ range 10000 }}{{ $y := $x }}{{ end }}"#,
        &[],
        OVER_BUDGET,
    );
    // Ordinary loops are far inside the budget.
    let fields = ok(
        r#"{{ range $i, $f := splitList "," .a }}{{ if $i }};{{ end }}{{ upper $f }}{{ end }}"#,
        &[("a", "a,b,c")],
    );
    assert_eq!(fields, "A;B;C");
    assert_eq!(ok("{{ range 100000 }}{{ end }}done", &[]), "done");
}

#[test]
fn the_budget_is_per_execution() {
    let mut t = Template::parse("{{ range 600000 }}{{ end }}ok").unwrap();
    for _ in 0..3 {
        let mut out = String::new();
        t.execute(&Map(Vec::new()), &mut out).unwrap();
        assert_eq!(out, "ok");
    }
}
