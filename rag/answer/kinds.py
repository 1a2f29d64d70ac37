"""The kinds of answer a question can ask for: shared by question analysis and span extraction."""

NUMBER, DURATION, DATE, PERSON, PLACE, ORG, DESCRIPTION = (
    "number", "duration", "date", "person", "place", "organization", "description",
)
ANSWER_KINDS = (NUMBER, DURATION, DATE, PERSON, PLACE, ORG, DESCRIPTION)
