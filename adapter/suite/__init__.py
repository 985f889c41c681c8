"""The contract suite for certification testers (`npo-adapter contract-test`).

Runs the national producer test cases (the families 1–7 of Inera's SoapUI suites) against any producer
of the five NPÖ contracts: declaration.py reads what the producer's test data holds, cases/ holds the
cases, runner.py runs them, report_*.py write the console summary, JUnit XML and the HTML report.
"""
