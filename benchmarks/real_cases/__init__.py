"""A corpus of public memory bugs, each reproduced by a thin service of ours over the library
at the version that showed it (and the fixed one), with the truth from the public record."""
