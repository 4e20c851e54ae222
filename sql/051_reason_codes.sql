-- The top reason codes of each scored transaction in an analyst's words, strongest
-- first, ranked across rule hits, the two models' per-feature attributions and
-- the user's own 30-day baseline (fraud_assets/detectors/reasons.py). Full, with
-- the row's numbers, for rows not approved and the hour's riskiest; the fired
-- rules' static wording for the others (most approved rows: empty).

ALTER TABLE detected_anomalies_ensemble
    ADD COLUMN IF NOT EXISTS reason_codes Array(String)
    COMMENT 'top reasons, strongest first, analyst wording' AFTER decision_reasons;
