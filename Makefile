# Shortcuts for the README's two commands and their parts.
.PHONY: setup demo test unit e2e

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

unit:
	scripts/test.sh -m "not e2e"

e2e:
	scripts/test.sh -m e2e
