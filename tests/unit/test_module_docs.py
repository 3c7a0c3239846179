"""docs/modules.md and docs/ru/modules.md are what scripts/module_docs.py generates from the
modules' own documentation today: a DOCUMENTATION, EXAMPLES or RETURN change without
`make module-docs` fails here, with the diff and the command to run."""

import subprocess
import sys

from scripts import module_docs
from tests.collection_path import REPO_ROOT


def test_the_module_reference_matches_the_modules_documentation():
    proc = subprocess.run([sys.executable, "-m", "scripts.module_docs", "--check"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_has_a_section_and_an_index_row_in_both_pages():
    for path in module_docs.PAGES.values():
        text = path.read_text(encoding="utf-8")
        for name in module_docs.module_names():
            assert "\n## %s\n" % name in text, (path, name)
            assert "\n| `%s` |" % name in text, (path, name)


def test_markup_is_written_as_markdown_that_cannot_break_a_table_or_turn_into_html():
    parts = module_docs.paragraphs(
        ["Use C(a|b) or O(port=587) of M(karto.supabase_mail.smtp_check), see L(the docs,https://example.com/x) "
         "and U(https://example.com/y); I(not) B(this) <b>x</b> * _ | E(HOME) V(true) RV(changed)."],
        "supabase_smtp")
    assert parts == ["Use `a\\|b` or `port=587` of `karto.supabase_mail.smtp_check`, see "
                     "[the docs](https://example.com/x) and [https://example.com/y](https://example.com/y); "
                     "*not* **this** &lt;b&gt;x&lt;/b&gt; \\* \\_ \\| `HOME` `true` `changed`."]
