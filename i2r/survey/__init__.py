"""The expert listening study (Singh et al. 2021, Sec. 3.3): stimuli, the web page, the statistics.

- :mod:`i2r.survey.responses` reads and validates tidy or wide response CSVs and applies exclusions;
- :mod:`i2r.survey.stats` runs normality, the two-way RM ANOVA (Greenhouse-Geisser) and TOST;
- :mod:`i2r.survey.report` renders Table 4, Fig. 9 and the report;
- :mod:`i2r.survey.loudness` is ITU-R BS.1770 loudness; :mod:`i2r.survey.stimuli` builds a survey;
- :mod:`i2r.survey.simulate` makes the simulated example responses.
"""

from i2r.survey.responses import Responses, read_responses
from i2r.survey.stats import (
    SurveyResult,
    SurveyStatsConfig,
    analyze_csv,
    analyze_responses,
    participant_means,
    rm_anova,
    rm_anova2,
    tost,
    tost_table,
)

__all__ = [
    "Responses", "SurveyResult", "SurveyStatsConfig", "analyze_csv", "analyze_responses",
    "participant_means", "read_responses", "rm_anova", "rm_anova2", "tost", "tost_table",
]
