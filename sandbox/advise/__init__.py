"""`sandbox advise`: which fix for this workload's memory? A race of remedies.

catalogue  the remedies (arms): what each changes, how to deploy it, its caveats
budget     "20m", "90s", "1h" as seconds
rules      pure decisions after each round: the best arm, the drops, the guardrails, the stop
state      race.json (atomic): the race's settings, its rounds and drops, so that it resumes
race       the loop: rounds of fresh servers through the experiment machinery
deploy     the lines that deploy the winner (Dockerfile, systemd, Kubernetes)
render     the ranked table and the note
"""
