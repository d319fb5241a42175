/*
 * test_names.c - table-name parsing, quoting, template expansion and install-script
 * generation, without a server (what the server makes of the script is
 * tests/integration/test_install.c's job).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

static void parse_ok(const char *text, const char *schema, const char *name)
{
    pgcw_qualified_name q;
    char err[256] = "";
    pgcw_status st = pgcw__parse_qualified_name(text, &q, err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("parsing [%s]: %s", text, err);
    assert_string_equal(q.schema, schema);
    assert_string_equal(q.name, name);
}

static void parse_bad(const char *text, const char *why)
{
    pgcw_qualified_name q;
    memset(&q, 'z', sizeof q);
    q.name[PGCW_MAX_IDENTIFIER] = '\0';
    q.schema[PGCW_MAX_IDENTIFIER] = '\0';
    char err[256] = "";
    pgcw_status st = pgcw__parse_qualified_name(text, &q, err, sizeof err);
    if (st != PGCW_EINVAL)
        fail_msg("[%s] parsed as [%s].[%s]", text ? text : "(null)", q.schema, q.name);
    if (!strstr(err, why))
        fail_msg("[%s]: message [%s] does not say [%s]", text ? text : "(null)", err,
                 why);
    /* *out is untouched on error. */
    assert_int_equal(q.name[0], 'z');
}

static void test_parse_plain(void **state)
{
    (void)state;
    parse_ok("orders", "", "orders");
    parse_ok("Orders", "", "orders");
    parse_ok("ORDERS_2$x", "", "orders_2$x");
    parse_ok("_t", "", "_t");
    parse_ok("sales.orders", "sales", "orders");
    parse_ok("\"Order Items\"", "", "Order Items");
}

static void test_parse_qualified(void **state)
{
    (void)state;
    parse_ok("sales.orders", "sales", "orders");
    parse_ok("Sales.Orders", "sales", "orders");
    parse_ok("\"Order Items\"", "", "Order Items");
    parse_ok("sales.\"Order Items\"", "sales", "Order Items");
    parse_ok("Mixed.\"Case\"", "mixed", "Case");
    parse_ok("\"Mixed\".\"Case\"", "Mixed", "Case");
    /* Whitespace around the parts, as PostgreSQL's own name lists allow. */
    parse_ok("  sales . orders ", "sales", "orders");
}

static void test_parse_quoted_is_literal(void **state)
{
    (void)state;
    /* A valid quoted identifier: "" is one quote, the rest is taken literally. */
    parse_ok("\"x\"\"; DROP TABLE y; --\"", "", "x\"; DROP TABLE y; --");
    parse_ok("\"a.b\".\"c\"\"\"", "a.b", "c\"");
    /* Non-ASCII letters are letters; only ASCII is folded. */
    parse_ok("Caf\xc3\xa9", "", "caf\xc3\xa9");
    parse_ok("\xc3\x89t\xc3\xa9", "", "\xc3\x89t\xc3\xa9");
}

static void test_parse_rejects(void **state)
{
    (void)state;
    parse_bad("t; DROP TABLE x", "unexpected ';'");
    parse_bad("t--", "unexpected '-'");
    parse_bad("t x", "unexpected 'x'");
    parse_bad("", "missing name");
    parse_bad("   ", "missing name");
    parse_bad(NULL, "no table name");
    parse_bad("1abc", "invalid character '1'");
    parse_bad("$abc", "invalid character '$'");
    parse_bad("a.b.c", "too many dotted names");
    parse_bad("a.", "missing name after the schema");
    parse_bad(".a", "invalid character '.'");
    parse_bad("\"unterminated", "unterminated quoted");
    parse_bad("\"x\"\"", "unterminated quoted");
    parse_bad("\"\"", "zero-length quoted");
    parse_bad("a.\"\"", "zero-length quoted");
    parse_bad("\"a\"b", "unexpected 'b'");
    parse_bad("a;", "unexpected ';'");
    parse_bad("a'b", "unexpected '''");
}

static void test_parse_length_limit(void **state)
{
    (void)state;
    char name[PGCW_MAX_IDENTIFIER + 8];
    memset(name, 'a', PGCW_MAX_IDENTIFIER);
    name[PGCW_MAX_IDENTIFIER] = '\0';
    parse_ok(name, "", name);
    name[PGCW_MAX_IDENTIFIER] = 'a';
    name[PGCW_MAX_IDENTIFIER + 1] = '\0';
    parse_bad(name, "longer than 63 bytes");

    /* Quoted: 62 letters plus a doubled quote is 63 bytes once unquoted. */
    char quoted[PGCW_MAX_IDENTIFIER + 16];
    quoted[0] = '"';
    memset(quoted + 1, 'b', 62);
    memcpy(quoted + 63, "\"\"\"", 4);
    pgcw_qualified_name q;
    assert_int_equal(pgcw_parse_qualified_name(quoted, &q), PGCW_OK);
    assert_int_equal(strlen(q.name), 63);
    assert_int_equal(q.name[62], '"');
    memcpy(quoted + 63, "c\"\"\"", 5);
    parse_bad(quoted, "longer than 63 bytes");
    /* The schema is limited too. */
    char qualified[2 * PGCW_MAX_IDENTIFIER + 8];
    memset(qualified, 's', 64);
    memcpy(qualified + 64, ".t", 3);
    parse_bad(qualified, "longer than 63 bytes");
}

static void test_quote(void **state)
{
    (void)state;
    struct {
        const char *in, *ident, *literal;
    } cases[] = {
        {"orders", "\"orders\"", "'orders'"},
        {"", "\"\"", "''"},
        {"Order Items", "\"Order Items\"", "'Order Items'"},
        {"x\"; DROP TABLE y; --", "\"x\"\"; DROP TABLE y; --\"",
         "'x\"; DROP TABLE y; --'"},
        {"it's", "\"it's\"", "'it''s'"},
        {"''\"\"", "\"''\"\"\"\"\"", "'''''\"\"'"},
        {"back\\slash", "\"back\\slash\"", "'back\\slash'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *id = pgcw_quote_ident(cases[i].in);
        char *lit = pgcw_quote_literal(cases[i].in);
        assert_non_null(id);
        assert_non_null(lit);
        assert_string_equal(id, cases[i].ident);
        assert_string_equal(lit, cases[i].literal);
        pgcw_free(id);
        pgcw_free(lit);
    }
    assert_null(pgcw_quote_ident(NULL));
    assert_null(pgcw_quote_literal(NULL));
}

static void test_template_expand(void **state)
{
    (void)state;
    const pgcw__sql_var vars[] = {{"a", "\"A\""}, {"b_2", "'b'"}, {"ab", "AB"}};
    pgcw__buf b = {0};
    assert_int_equal(
        pgcw__sql_expand(&b, "x {{a}}{{b_2}} {{ab}}{{a}} { } {x} }}", vars, 3), PGCW_OK);
    assert_string_equal(b.data, "x \"A\"'b' AB\"A\" { } {x} }}");
    pgcw__buf_free(&b);

    /* Values are pasted once, never re-expanded. */
    const pgcw__sql_var tricky[] = {{"a", "{{b}}"}, {"b", "no"}};
    assert_int_equal(pgcw__sql_expand(&b, "{{a}}", tricky, 2), PGCW_OK);
    assert_string_equal(b.data, "{{b}}");
    pgcw__buf_free(&b);

    assert_int_equal(pgcw__sql_expand(&b, "no placeholders", NULL, 0), PGCW_OK);
    assert_string_equal(b.data, "no placeholders");
    pgcw__buf_free(&b);

    const char *bad[] = {
        "{{unknown}}",           "{{a", "{{a}", "{{}}", "{{A}}", "{{a b}}",
        "ok {{a}} then {{nope}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pgcw__sql_expand(&b, bad[i], vars, 3) != PGCW_EINVAL)
            fail_msg("template [%s] was accepted", bad[i]);
        pgcw__buf_free(&b);
    }
    /* A variable without a value is as unknown as a missing one. */
    const pgcw__sql_var novalue[] = {{"a", NULL}};
    assert_int_equal(pgcw__sql_expand(&b, "{{a}}", novalue, 1), PGCW_EINVAL);
    pgcw__buf_free(&b);
}

/* Every embedded template expands completely with the variables install uses. */
static void test_templates_are_well_formed(void **state)
{
    (void)state;
    const char *tmpls[] = {
        pgcw__sql_notify_function,        pgcw__sql_notify_keys_function,
        pgcw__sql_table_triggers,         pgcw__sql_keys_triggers,
        pgcw__sql_drop_trigger_if_exists, pgcw__sql_changelog_tables,
        pgcw__sql_changelog_functions,    pgcw__sql_changelog_search_path};
    const pgcw__sql_var vars[] = {
        {"function", "F"},       {"keys_function", "K"}, {"channel", "C"},
        {"tag", "$T$"},          {"table", "T"},         {"trigger", "G"},
        {"trigger_ins", "GI"},   {"trigger_upd", "GU"},  {"trigger_del", "GD"},
        {"notify", "N"},         {"log_table", "L"},     {"pruned_table", "P"},
        {"write_function", "W"}, {"read_function", "R"}, {"prune_function", "X"},
        {"signatures", "'S'"}};
    for (size_t i = 0; i < sizeof tmpls / sizeof tmpls[0]; i++) {
        pgcw__buf b = {0};
        assert_int_equal(
            pgcw__sql_expand(&b, tmpls[i], vars, sizeof vars / sizeof vars[0]), PGCW_OK);
        assert_null(strstr(b.data, "{{"));
        pgcw__buf_free(&b);
    }
    assert_non_null(strstr(pgcw__sql_uninstall_objects, "to_regprocedure"));
}

/* Out of line: inlined, GCC 12's -Wdangling-pointer mistakes the returned script
 * for the address of the local `sql` (a known false positive). A handle of its own
 * per call, since the tests change the options between calls; its message is copied
 * to err. */
__attribute__((noinline)) static char *script(const pgcw_install_opts *o,
                                              const char *table, pgcw_status want,
                                              char *err, size_t errlen)
{
    char *sql = (char *)1;
    const char *tables[] = {table};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(o, &in), PGCW_OK);
    pgcw_status st = pgcw_install_sql(in, tables, 1, &sql);
    snprintf(err, errlen, "%s", pgcw_install_errmsg(in));
    pgcw_install_free(in);
    if (st != want)
        fail_msg("install_sql(%s): %s (%s)", table, pgcw_status_name(st), err);
    if (st != PGCW_OK)
        assert_null(sql);
    return sql;
}

static void test_install_sql_quotes_everything(void **state)
{
    (void)state;
    char err[256];
    pgcw_install_opts o = {0};
    char *sql = script(&o, "sales.\"Order Items\"", PGCW_OK, err, sizeof err);
    assert_true(strncmp(sql, "BEGIN;\n", 7) == 0);
    assert_non_null(strstr(sql, "\nCOMMIT;\n"));
    assert_non_null(
        strstr(sql, "CREATE OR REPLACE FUNCTION "
                    "\"fn_pgcachewatch_table_change_ch_pgcachewatch_table_change\"()"));
    assert_non_null(strstr(sql, "pg_notify('ch_pgcachewatch_table_change'"));
    /* One trigger name per channel, the same on every table (the Python tool's). */
    assert_non_null(strstr(
        sql, "CREATE TRIGGER "
             "\"tg_pgcachewatch_table_change_ch_pgcachewatch_table_change\" AFTER "
             "INSERT OR UPDATE OR DELETE OR TRUNCATE ON \"sales\".\"Order Items\""));
    assert_non_null(strstr(sql, "FOR EACH STATEMENT"));
    /* Switching with_keys off drops the keyed variant. */
    assert_non_null(strstr(
        sql, "DROP TRIGGER IF EXISTS "
             "\"tg_pgcachewatch_table_change_ch_pgcachewatch_table_change_upd\" ON "
             "\"sales\".\"Order Items\";"));
    assert_null(strstr(sql, "_keys"));
    assert_null(strstr(sql, "{{"));
    pgcw_free(sql);

    /* Derived names fold ASCII capitals (as PostgreSQL folds the Python tool's
     * unquoted names); the channel itself keeps them. */
    o.with_keys = true;
    o.channel = "It's \xc3\x89";
    o.function_name = "Fn";
    o.trigger_prefix = "P_";
    sql = script(&o, "\"x\"\"; DROP TABLE y; --\"", PGCW_OK, err, sizeof err);
    assert_non_null(strstr(sql, "CREATE OR REPLACE FUNCTION \"fn_it's \xc3\x89\"()"));
    assert_non_null(
        strstr(sql, "CREATE OR REPLACE FUNCTION \"fn_it's \xc3\x89_keys\"()"));
    assert_non_null(strstr(sql, "pg_notify('It''s \xc3\x89'"));
    assert_null(strstr(sql, "Fn_"));
    assert_non_null(strstr(sql, "CREATE TRIGGER \"p_it's \xc3\x89_ins\" AFTER "
                                "INSERT ON \"x\"\"; DROP TABLE y; --\""));
    assert_non_null(strstr(sql, "CREATE TRIGGER \"p_it's \xc3\x89\" AFTER "
                                "TRUNCATE ON \"x\"\"; DROP TABLE y; --\""));
    assert_non_null(
        strstr(sql, "REFERENCING OLD TABLE AS pgcw_old NEW TABLE AS pgcw_new"));
    pgcw_free(sql);
}

static void test_install_sql_dollar_tag_avoids_channel(void **state)
{
    (void)state;
    char err[256];
    pgcw_install_opts o = {.channel = "a$pgcw$b$pgcw_1$c", .with_keys = true};
    o.function_name = "f";
    char *sql = script(&o, "t", PGCW_OK, err, sizeof err);
    assert_non_null(strstr(
        sql, "LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgcw_2$\n"));
    assert_null(strstr(sql, "AS $pgcw$"));
    pgcw_free(sql);
}

static void test_install_sql_refuses(void **state)
{
    (void)state;
    char err[256];
    pgcw_install_opts o = {0};
    script(&o, "t; DROP TABLE x", PGCW_EINVAL, err, sizeof err);
    assert_non_null(strstr(err, "t; DROP TABLE x"));
    script(&o, "\"open", PGCW_EINVAL, err, sizeof err);

    /* The default prefixes are 29 bytes: a 34-byte channel keeps the plain (Python)
     * names; longer ones are shortened to 63 bytes with a hash of the full name,
     * deterministic and distinct per channel, never refused. */
    char c[64];
    memset(c, 'c', 63);
    c[34] = '\0';
    o.channel = c;
    char *plain = script(&o, "t", PGCW_OK, err, sizeof err);
    assert_non_null(strstr(
        plain,
        "TRIGGER \"tg_pgcachewatch_table_change_cccccccccccccccccccccccccccccccccc\""));
    assert_non_null(strstr(
        plain,
        "FUNCTION \"fn_pgcachewatch_table_change_cccccccccccccccccccccccccccccccccc\""));
    pgcw_free(plain);
    c[34] = 'c';
    c[40] = '\0';
    char *a = script(&o, "t", PGCW_OK, err, sizeof err);
    char *a2 = script(&o, "t", PGCW_OK, err, sizeof err);
    assert_string_equal(a, a2); /* deterministic */
    c[40] = 'u';
    c[41] = '\0';
    char *b = script(&o, "t", PGCW_OK, err, sizeof err);
    /* Both names share their first 54 bytes; the hashes differ. */
    const char *pa =
        strstr(a, "TRIGGER \"tg_pgcachewatch_table_change_ccccccccccccccccccccccccc_");
    const char *pb =
        strstr(b, "TRIGGER \"tg_pgcachewatch_table_change_ccccccccccccccccccccccccc_");
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(strchr(pa + 9, '"') - (pa + 9), 63); /* exactly 63 bytes */
    assert_memory_not_equal(pa, pb, 9 + 63);
    pgcw_free(a);
    pgcw_free(a2);
    pgcw_free(b);
    /* With keys, the _ins/_upd/_del names keep their suffix. */
    o.with_keys = true;
    c[40] = '\0';
    char *keyed = script(&o, "t", PGCW_OK, err, sizeof err);
    const char *pi = strstr(keyed, "_ins\"");
    assert_non_null(pi);
    const char *q = pi;
    while (q > keyed && q[-1] != '"')
        q--;
    assert_int_equal(pi + 4 - q, 63);
    pgcw_free(keyed);
    o.with_keys = false;
    /* A multi-byte character at the cut is never split. */
    char u[80] = "";
    for (int i = 0; i < 20; i++)
        strcat(u, "\xc3\xa9"); /* e-acute, 2 bytes each */
    o.channel = u;
    char *multibyte = script(&o, "t", PGCW_OK, err, sizeof err);
    const char *pu = strstr(multibyte, "TRIGGER \"tg_pgcachewatch_table_change_");
    assert_non_null(pu);
    const char *end = strchr(pu + 9, '"');
    const char *us = end - 9; /* "_xxxxxxxx" */
    assert_true(us[0] == '_');
    assert_true(((unsigned char)us[-1] & 0xC0) != 0xC0); /* not a lead byte alone */
    assert_true((end - (pu + 9)) <= 63);
    pgcw_free(multibyte);
    /* Long table names are no part of any derived name. */
    o.channel = NULL;
    char t[64];
    memset(t, 't', 63);
    t[63] = '\0';
    char *long_table = script(&o, t, PGCW_OK, err, sizeof err);
    assert_null(strstr(long_table, "change_ttt"));
    pgcw_free(long_table);

    /* Channel and function names. */
    o.channel = "";
    script(&o, "t", PGCW_EINVAL, err, sizeof err);
    assert_non_null(strstr(err, "channel"));
    char ch[80];
    memset(ch, 'c', 64);
    ch[64] = '\0';
    o.channel = ch;
    script(&o, "t", PGCW_EINVAL, err, sizeof err);
    assert_non_null(strstr(err, "channel name"));
    /* A long channel makes the function names long: shortened the same way. */
    o.channel = ch + 1;
    o.with_keys = true;
    char *long_channel = script(&o, "t", PGCW_OK, err, sizeof err);
    assert_non_null(strstr(long_channel, "_keys\"()"));
    pgcw_free(long_channel);
    o.with_keys = false;
    o.channel = NULL;
    o.function_name = "";
    script(&o, "t", PGCW_EINVAL, err, sizeof err);

    /* Argument errors. */
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(NULL, &in), PGCW_OK);
    char *out = (char *)1;
    assert_int_equal(pgcw_install_sql(in, NULL, 1, &out), PGCW_EINVAL);
    assert_null(out);
    assert_int_equal(pgcw_install_sql(in, NULL, 0, NULL), PGCW_EINVAL);
    /* No tables: just the function. */
    assert_int_equal(pgcw_install_sql(in, NULL, 0, &out), PGCW_OK);
    assert_non_null(strstr(out, "CREATE OR REPLACE FUNCTION"));
    assert_null(strstr(out, "CREATE TRIGGER"));
    pgcw_free(out);
    /* One bad table in a list fails the whole call. */
    const char *tables[] = {"good", "bad name"};
    assert_int_equal(pgcw_install_sql(in, tables, 2, &out), PGCW_EINVAL);
    assert_null(out);
    assert_non_null(strstr(pgcw_install_errmsg(in), "bad name"));
    pgcw_install_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_qualified),
        cmocka_unit_test(test_parse_quoted_is_literal),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_length_limit),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_template_expand),
        cmocka_unit_test(test_templates_are_well_formed),
        cmocka_unit_test(test_install_sql_quotes_everything),
        cmocka_unit_test(test_install_sql_dollar_tag_avoids_channel),
        cmocka_unit_test(test_install_sql_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
