def main(f):
    return "{0.__globals__}".format(f)
