"""Fixed demo data created by `--seed default`, so `make demo` and docs can name it."""

# A Supabase project ref is 20 lowercase letters.
DEMO_PROJECT_REF = "kartodemoprojectrefa"
# A second demo project (say, staging), reachable with the same token and seeded like the first.
DEMO_STAGING_PROJECT_REF = "kartostagingrefabcde"

# A personal access token has the shape sbp_ + 40 hex; these are the hex of "karto-sandbox-demo-1".
DEMO_ACCESS_TOKEN = "sbp_6b6172746f2d73616e64626f782d64656d6f2d31"

# An SMTP2GO API key has the shape api- + 32 letters or digits; all endpoints allowed.
DEMO_SMTP2GO_API_KEY = "api-KartoSandboxDemoSmtp2goKey000001"
