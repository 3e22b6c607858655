-- An enterprise's own wording of its prompts, one template per locale
-- (`en`, `fr`, `fr-ca` …). Without a row for a locale the prompt falls back
-- to the enterprise's English, then to the built-in text. Templates are
-- checked when written (unknown placeholders are refused), so every stored
-- one renders.

CREATE TABLE prompt_templates (
    enterprise_id TEXT NOT NULL REFERENCES enterprises (id),
    locale        TEXT NOT NULL,
    template      TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, locale)
);
