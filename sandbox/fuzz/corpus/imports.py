from . import x
import os.path as _p
from json import *
match x:
    case object(__class__=c): pass
