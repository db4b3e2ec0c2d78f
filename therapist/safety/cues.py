"""Context cues for the patient screen: reported speech, fiction, jokes, negation, time, method,
access, distress and the harm-to/from-others context patterns."""
from __future__ import annotations

import re

_SUBJ3 = (r"(?:he|she|they|friend|friends|mate|bestie|brother|sister|mum|mom|mother|dad|father|son|"
          r"daughter|wife|husband|partner|boyfriend|girlfriend|bf|gf|cousin|aunt|uncle|colleague|"
          r"coworker|boss|teacher|character|protagonist|narrator|villain|hero|heroine|someone|somebody|"
          r"people|everyone|person|guy|girl|kid|kids|student|client|patient|singer|rapper|comedian|"
          r"actor|author|poster|user|post|song|lyrics?|meme|tweet|video|comment|classmate|roommate|flatmate|"
          r"doctor|therapist|gp|nurse|psychiatrist|counsell?or|psychologist)")
_SPEECH = (r"(?:said|says|saying|told|tells|telling|texted|texts|posted|posts|wrote|writes|joked|jokes|"
           r"joking|tweeted|sang|sings|screamed|yelled|shouted|messaged|typed|goes|went|kept saying|"
           r"keeps saying|commented|asked|asks|asking)")
_REPORTED = re.compile(rf"\b{_SUBJ3}\b(?: [a-z]+){{0,3}} {_SPEECH}\b")
_FICTION = re.compile(
    r"\b(?:my (?:character|protagonist|novel|story|book|script|screenplay|fanfic|fic|play|comic|manuscript)|"
    r"(?:in|for) (?:the|this|a|my) (?:book|novel|film|movie|show|series|episode|game|song|play|story|"
    r"anime|manga|comic|musical|scene)|chapter \d+|the (?:protagonist|narrator|villain|main character|lyrics?)|"
    r"lyrics?|song (?:goes|says)|(?:a|the) line (?:from|in))\b")
_JOKE = re.compile(r"\b(?:lol|lmao|lmfao|rofl|haha\w*|hehe\w*|jk|joking|kidding|jokes)\b")
_NEG = re.compile(
    r"\b(?:not|never|dont|didnt|doesnt|wont|wouldnt|cant|couldnt|shouldnt|isnt|arent|wasnt|havent|hasnt|"
    r"nor|no longer|no (?:intention|intentions|plans?|desire|wish|urge|urges|thoughts?|interest) (?:of|to|in))\b"
    r"(?! (?:stop|help|shake|get (?:rid|it|them|this|that)|sure|certain|know (?:if|whether|why|how)|"
    r"lie|pretend|deny|say|tell|explain|see a way|see any|think (?:of|about) anything|handle))")
_THIRD_SUBJ = re.compile(rf"(?:\b(?:he|she|they|hes|shes|theyre|his|her|their|{_SUBJ3[3:-1]})\b(?: [a-z]+){{0,3}} "
                         r"(?:is|was|has|had|have|been|feels|felt|gets|got|seems|seemed|died|committed|attempted|"
                         r"talks|talked|thinks|thought|went)\b|died by|lost (?:him|her|them|someone|a \w+) to)")
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:but|and|though|although|yet|so|because|however|except)\b")

_REMOTE = re.compile(
    r"\b(?:years? ago|(?:a )?long time ago|when i was (?:a )?(?:kid|child|teen|teenager|younger|little|"
    r"in (?:school|high school|college|uni|university|my (?:teens|twenties|20s))|\d+)|in (?:high school|"
    r"college|uni|university|my (?:teens|twenties|20s|early \w+))|as a (?:teen|teenager|kid|child)|back then|"
    r"back in (?:\d{4}|school|college|the day)|in (?:19|20)\d\d|(?:\d+|two|three|four|five|six|seven|eight|"
    r"nine|ten|several|many|a few|a couple of) years (?:ago|back)|used to|in the past)\b")
_RESOLVED = re.compile(
    r"\b(?:doing (?:much |a lot |so much |really )?(?:better|well|ok|okay|good|great)|in a (?:good|better|"
    r"much better) place|(?:much|a lot|so much|way) better now|recovered|havent (?:felt|thought|done|cut|had|"
    r"been|selfharmed|hurt)\b.{0,40}\b(?:since|years|in (?:\w+ )?(?:years|months))|(?:\d+|two|three|four|five|"
    r"six|seven|eight|nine|ten|several|many) (?:years|months) (?:clean|free|sober)|clean (?:for|since)|"
    r"dont feel (?:that way|like that)|no longer (?:feel|suicidal|selfharm|cut|want)|not anymore|"
    r"grateful (?:to be|im) alive|glad (?:i survived|im (?:still )?alive|to be alive|it didnt work)|"
    r"(?:got|getting) (?:the )?(?:help|treatment)|im (?:ok|okay|fine|safe) now|stable now)\b")
_CURRENT = re.compile(
    r"\b(?:again|lately|recently|these days|this (?:week|month|morning|evening|year|weekend)|today|tonight|"
    r"right now|coming back|came back|(?:are|is|have) back|returned|since (?:yesterday|last)|"
    r"still (?:want|think|feel|have|cut|wish))\b")
_TIMING = re.compile(
    r"\b(?:tonight|right now|this evening|about to|in (?:a few|an|one|two|\d+|a couple of) (?:minutes?|mins|"
    r"hours?)|before (?:morning|sunrise|the sun comes up|tomorrow)|after (?:everyone|they|the kids|my "
    r"(?:family|parents|wife|husband|partner|roommate)) (?:goes?|go|are|is|has gone|have gone|falls?) "
    r"(?:to bed|asleep|out|to sleep)|when (?:everyone|they) (?:is|are) asleep|(?:today|now)(?= *(?:[.!?]|$)))")
_STRONG_TIMING = re.compile(r"\b(?:tonight|in (?:a few|an|one|two|\d+|a couple of) (?:minutes?|mins|hours?)|"
                            r"before (?:morning|sunrise|tomorrow)|after (?:everyone|they) (?:goes?|go) (?:to bed|"
                            r"to sleep)|about to)\b")
_JUST_NOW = re.compile(r"\b(?:just|already|minutes? ago|an hour ago|half an hour ago|right now|tonight|"
                       r"(?:a few|\d+|two|three) (?:minutes|hours?) ago)\b")
_RECENT = re.compile(r"\b(?:last (?:night|week|weekend|month|time)|yesterday|this (?:morning|week|weekend|"
                     r"month|afternoon)|earlier|(?:a few|two|three|couple of|couple) (?:days|weeks) ago|"
                     r"the other (?:day|night)|recently|again|on (?:monday|tuesday|wednesday|thursday|friday|"
                     r"saturday|sunday)|at the weekend|over the weekend)\b")
_METHOD = re.compile(
    r"\b(?:pills|tablets|overdose|overdosing|od|rope|noose|hang|hanging|jump|jumping|bridge|roof|ledge|"
    r"train|tracks|gun|shoot|knife|blade|blades|razor|wrists?|drown|drowning|crash (?:my|the) car|"
    r"bleach|poison|carbon monoxide|helium|charcoal|exhaust|cliff|paracetamol|tylenol|insulin)\b")
_ACCESS = re.compile(
    r"\b(?:ive got|i got|i own|i keep|ive (?:been )?(?:saving|stockpiling|collecting|hoarding|saved)|"
    r"i have (?:a|the|my|enough|all|some|lots|loads)|ive (?:a|the|enough|all)|theres (?:a|enough) |"
    r"in my (?:drawer|cupboard|cabinet|car|bag|room|pocket|bedside)|my (?:dads|fathers|husbands|partners|"
    r"brothers|moms|mums) (?:gun|pills|rifle|shotgun|meds)|(?:gun|rope|pills|tablets|knife|blade|razor)s? "
    r"(?:is|are) (?:right )?(?:here|next to me|in front of me|loaded|ready))")
_DISTRESS = re.compile(
    r"\b(?:lost (?:my|the) (?:job|house|home|wife|husband|partner|kids|everything|baby|flat|apartment)|"
    r"(?:got|been|was|just got) (?:fired|laid off|evicted|dumped|sacked)|(?:she|he|they) left me|"
    r"broke up with me|cant (?:take|do) (?:it|this|any of this) (?:any ?more|much longer)|cant go on|"
    r"no point|pointless|hopeless|worthless|nothing (?:matters|left)|giv(?:e|ing) up|(?:so|really|all) alone|"
    r"(?:nobody|no one) (?:cares|would care|would notice|would miss me)|whats the point|done with "
    r"(?:everything|life|it all)|failed (?:everything|at everything)|ruined|over for me|end of my rope|"
    r"my life is over|want (?:it|everything) (?:all )?to (?:stop|end)|tired of (?:everything|life|living|it all)|"
    r"last straw|nothing to live for|cant cope|falling apart|(?:so|really|completely) (?:empty|numb|done)|"
    r"burden|ive had enough|had enough of (?:everything|life|it all)|(?:so )?over (?:everything|it all|life)|"
       r"everyone hates me|hate my life|cant do this any ?more)\b")
_GOODBYE_PRETEXT = re.compile(r"\b(?:school project|for (?:a|my) (?:story|novel|book|essay|project|class|"
                              r"friend)|asking for a friend|just curious|hypothetically)\b")


_FROM_IMMINENT = re.compile(r"\b(?:right now|(?:hes|shes|theyre) (?:outside|at the door|here|coming|on (?:his|her|"
                            r"their) way|breaking in|banging)|at the door|breaking (?:in|the door)|im hiding|"
                            r"locked myself in)\b")
_FROM_PAST = re.compile(r"\b(?:used to|when i was (?:a kid|little|young|a child|small|a teen|\d+)|as a (?:kid|child)|"
                        r"growing up|years ago)\b")
_OTHERS_PLAN = re.compile(r"\b(?:i (?:have|got|bought|own)|ive got|ive bought) (?:a |my |the )?(?:gun|knife|"
                          r"weapon|bat|rifle|pistol|machete|axe)|know where (?:he|she|they) (?:lives?|works?|parks?|"
                          r"sleeps?)|(?:waiting|parked|sitting) outside (?:his|her|their) (?:house|place|work|flat)|"
                          r"i have a plan|ive planned|i mean it|not joking|for real|seriously\b")
_HYPERBOLE_COULD = re.compile(r"\b(?:could|couldve|could have|id)\b(?: \w+)? (?:kill|murder|strangle|throttle|"
                              r"strangling|killing)\b")



def _clause_tail(prefix: str, words: int = 6) -> str:
    parts = _CLAUSE_BREAK.split(prefix)
    tail = parts[-1] if parts else prefix
    toks = tail.split()
    return " ".join(toks[-words:])


def _negated(prefix: str) -> bool:
    return bool(_NEG.search(_clause_tail(prefix)))

