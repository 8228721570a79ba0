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
