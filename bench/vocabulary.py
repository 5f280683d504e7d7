"""A fixed vocabulary of common English words for real-text-like benchmark documents.

Throughput does not depend on what the words mean, but it does depend on what the tokenizer makes of
them (about one token per common word) and attention kernels behave differently on degenerate input,
so documents are seeded word salad from real words: never zeros, never one repeated token.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FUNCTION_WORDS = _words(
    """
    the of and to in is that for it as was with be by on not this are or from at which but have an they
    you were her she there one all we their has been if more when will would who so no his its into than
    then them these some can could may might must should our out up about after before over under
    between through during without within while where because although since until each every other such
    only also very most many much few both either neither same own just even still here
    """
)

CONTENT_WORDS = _words(
    """
    time year people way day man woman child world life hand part place case week company system program
    question work government number night point home water room mother area money story fact month lot
    right study book eye job word business issue side kind head house service friend father power hour
    game line end member law car city community name president team minute idea kid body information
    back parent face others level office door health person art war history party result change morning
    reason research girl guy moment air teacher force education foot boy age policy music market sense
    nation plan college interest death experience effect class control care field development role
    effort rate heart drug show leader light voice wife police mind price report decision son view
    relationship town road arm difference value building action model season society tax director
    position player record paper space ground form event official matter center couple site project
    activity star table need court oil situation cost industry figure street image phone data picture
    practice piece land product doctor wall patient worker news test movie north love support technology
    step baby computer type attention film tree source organization hair window evidence population
    river garden bridge mountain island forest ocean weather summer winter spring autumn kitchen bread
    cheese apple orange coffee dinner breakfast lunch recipe flavor vegetable engine battery signal
    network server memory storage algorithm protocol method theory energy climate carbon planet species
    animal plant seed harvest farmer village museum library student lesson language grammar novel poem
    painter concert theater stadium coach athlete medal journey train airport ticket passenger hotel
    beach harbor castle valley desert glacier volcano storm thunder cloud sunlight shadow mirror glass
    metal steel copper silver gold stone brick wood paper cotton wool leather shirt jacket shoe pocket
    button letter message answer problem solution pattern structure function process feature quality
    measure sample survey analysis budget profit income salary contract agreement meeting schedule
    deadline task goal strategy customer supplier factory machine tool device sensor camera screen
    keyboard software hardware website account password security privacy risk safety accident injury
    hospital medicine treatment symptom disease doctor nurse therapy exercise diet sleep stress emotion
    memory habit behavior culture tradition festival holiday wedding birthday gift neighbor stranger
    crowd audience
    """
)

VERBS = _words(
    """
    say get make go know take see come think look want give use find tell ask seem feel try leave call
    keep let begin help talk turn start show hear play run move like live believe hold bring happen
    write provide sit stand lose pay meet include continue set learn lead understand watch follow stop
    create speak read allow add spend grow open walk win offer remember consider appear buy wait serve
    die send expect build stay fall cut reach kill remain suggest raise pass sell require report decide
    pull explain develop carry break receive agree support hit produce eat cover catch draw choose cause
    point listen realize place close involve increase measure compare improve reduce protect prepare
    discover describe travel collect design deliver enjoy explore finish imagine manage notice observe
    organize publish repair replace return share solve store teach test visit wonder
    """
)

ADJECTIVES = _words(
    """
    good new first last long great little own other old right big high different small large next early
    young important few public bad same able late hard major better economic strong possible whole free
    military true federal international full special easy clear recent certain personal open red
    difficult available likely short single medical current wrong private past foreign fine common poor
    natural significant similar hot dead central happy serious ready simple left physical general
    environmental financial blue democratic dark various entire close legal religious cold final main
    green nice huge popular traditional cultural quiet bright fresh careful heavy narrow wide ancient
    modern rural urban coastal northern southern eastern western gentle rapid steady sudden rare strange
    familiar useful
    """
)

WORDS: tuple[str, ...] = FUNCTION_WORDS + CONTENT_WORDS + VERBS + ADJECTIVES
